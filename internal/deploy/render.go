package deploy

import (
	"fmt"
	"path"
	"strings"
)

// Paths users and scripts rely on (issue 7), and the sockets between them.
const (
	GatewayUnit       = "/etc/systemd/system/clamgate.service"
	GatewaySocketUnit = "/etc/systemd/system/clamgate.socket"
	EngineUnit        = "/etc/systemd/system/clamgate-clamd.service"
	QuadletFile       = "/etc/containers/systemd/clamd.container"
	GatewayConf       = "/etc/clamgate/clamgate.toml"
	ClamdConf         = "/etc/clamgate/clamd.conf"
	TmpfilesConf      = "/etc/tmpfiles.d/clamgate.conf"
	SysusersConf      = "/etc/sysusers.d/clamgate.conf"
	Binary            = "/usr/local/bin/clamgate" // where an administrator installs a built binary
	PackagedBinary    = "/usr/bin/clamgate"       // where the Debian package (scripts/package.sh) puts it

	EngineDir      = "/run/clamgate/engine" // clamd's socket, shared with the container
	EngineTmp      = "/var/tmp/clamgate-clamd"
	AmavisSockDir  = "/run/clamgate/amavis"
	PostfixSockDir = "/var/spool/postfix/clamgate"
	containerName  = "clamgate-clamd"
	dbMount        = "/var/lib/clamav-ro" // not /var/lib/clamav: the upstream entrypoint chowns that (it would change the owner of the host's database)
	confMount      = "/etc/clamgate-clamd/clamd.conf"
	streamMax      = "100M"
	maxThreads     = 10
)

const header = "# Written by `clamgate deploy apply`; `clamgate deploy rollback` removes it.\n"

// Engine is how clamd runs, in a container or under its own unit: derived
// from the image (container) and the host.
type Engine struct {
	Kind          string // KindContainer or KindUnit
	User          string // the unit engine's clamd user
	Image         Image
	UID, GID      int    // the clamd process's (local image) or its socket directory owner (upstream: 100)
	SocketInside  string // socket directory as the container sees it
	DBDir         string // host signature directory, mounted read-only
	Mem           Memory
	FreshclamUnit string
}

// NewEngine picks the container layout for an image on a host.
func NewEngine(img Image, h *Host) Engine {
	e := Engine{Kind: KindContainer, Image: img, UID: h.ClamdUID, GID: h.ClamdGID, SocketInside: "/run/clamd", DBDir: h.DBDir, Mem: SizeMemory(h.DBBytes)}
	if img.Upstream {
		// The upstream entrypoint waits for /tmp/clamd.sock and its clamd drops to uid 100.
		e.UID, e.GID, e.SocketInside = 100, 101, "/tmp"
	} else if e.UID < 0 {
		e.UID, e.GID = 100, 101
	}
	if h.Freshclam != nil {
		e.FreshclamUnit = h.Freshclam.Name
	}
	return e
}

// Socket is the engine's socket as the gateway (on the host) sees it.
func (e Engine) Socket() string { return EngineDir + "/clamd.sock" }

func (e Engine) volumes() []string {
	v := []string{e.DBDir + ":" + dbMount + ":ro", EngineDir + ":" + e.SocketInside}
	if e.Image.Upstream {
		// A writable volume for the entrypoint to chown; it holds no signatures.
		return append(v, ClamdConf+":/etc/clamav/clamd.conf:ro", "clamgate-clamd-db:/var/lib/clamav")
	}
	return append(v, ClamdConf+":"+confMount+":ro", EngineTmp+":/tmp")
}

func (e Engine) command() []string {
	if e.Image.Upstream {
		return nil // the image's own entrypoint
	}
	return []string{"/usr/sbin/clamd", "--foreground=true", "--config-file=" + confMount}
}

// PodmanArgs are the arguments after "podman"; cidfile may be "" outside systemd.
func (e Engine) PodmanArgs(cidfile string) []string {
	a := []string{"run", "--name=" + containerName, "--replace", "--rm", "-d"}
	if cidfile != "" {
		a = append(a, "--cidfile="+cidfile, "--cgroups=split", "--sdnotify=conmon")
	}
	// runc and explicit ulimits: crun and the default rlimits fail on some cgroup layouts (podman 4.3, Debian 12).
	a = append(a, "--runtime=runc", "--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024")
	a = append(a, "--uidmap="+idMap(), "--gidmap="+idMap())
	a = append(a, "--cap-drop=all", "--security-opt=no-new-privileges", "--network=none", fmt.Sprintf("--memory=%dm", e.Mem.MaxMiB))
	if e.Image.Upstream {
		a = append(a, "--cap-add=chown,dac_override,fowner,setgid,setuid", "--env=CLAMAV_NO_FRESHCLAMD=true", "--env=CLAMAV_NO_MILTERD=true")
	} else {
		a = append(a, fmt.Sprintf("--user=%d:%d", e.UID, e.GID), "--read-only", "--tmpfs=/run:rw,nosuid,nodev,noexec,size=16m")
	}
	for _, v := range e.volumes() {
		a = append(a, "--volume="+v)
	}
	return append(append(a, e.Image.Ref), e.command()...)
}

// ClamdConfFile is the engine's clamd.conf.
func (e Engine) ClamdConfFile() string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(`# The one clamd behind clamgate. Only the gateway reaches its socket: no TCPSocket, clamd has
# no authentication. clamgate reloads it when freshclam is done (frugal reload), hence
# ConcurrentDatabaseReload no (one database in RAM), SelfCheck 0 (no second reloader) and
# IdleTimeout 2 (a non-concurrent reload first waits for idle threads to exit).
Foreground yes
`)
	fmt.Fprintf(&b, "LocalSocket %s/clamd.sock\nLocalSocketMode 660\nFixStaleSocket yes\n", e.SocketInside)
	fmt.Fprintf(&b, "DatabaseDirectory %s\n", e.dbInside())
	tmp := "/tmp"
	if e.Image.Upstream {
		b.WriteString("User clamav\n")
		tmp = "/var/tmp"
	}
	fmt.Fprintf(&b, "TemporaryDirectory %s\n", tmp)
	fmt.Fprintf(&b, "ConcurrentDatabaseReload no\nSelfCheck 0\nIdleTimeout 2\nStreamMaxLength %s\nMaxThreads %d\n", streamMax, maxThreads)
	b.WriteString("ReadTimeout 120\nCommandReadTimeout 30\nExitOnOOM yes\nLogTime yes\nLogSyslog no\n")
	// Without it an object past a scan limit (nesting, file count, scan
	// size) comes back OK; with it, Heuristics.Limits.Exceeded FOUND, which
	// the gateway's on_limits turns into the answer the admin chose.
	b.WriteString("AlertExceedsMax yes\n")
	return b.String()
}

// PlainUnit runs the container with podman run (podman < 4.4 has no Quadlet).
func (e Engine) PlainUnit() string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(e.unitHead("in a container (podman run)", "man:podman-run(1)", "freshclam stays on the host; the container only reads"))
	fmt.Fprintf(&b, `
[Service]
Type=notify
NotifyAccess=all
Environment=PODMAN_SYSTEMD_UNIT=%%n
ExecStartPre=/usr/bin/systemd-tmpfiles --create %s
ExecStartPre=/usr/bin/rm -f %%t/%%n.ctr-id
ExecStart=/usr/bin/podman %s
ExecStop=/usr/bin/podman stop --ignore -t 10 --cidfile=%%t/%%n.ctr-id
ExecStopPost=/usr/bin/podman rm -f --ignore -t 10 --cidfile=%%t/%%n.ctr-id
Restart=on-failure
TimeoutStartSec=600
%s
[Install]
WantedBy=multi-user.target
`, TmpfilesConf, strings.Join(e.PodmanArgs("%t/%n.ctr-id"), " \\\n\t"), memDirectives(e.Mem))
	return b.String()
}

// unitHead is the [Unit] section of the engine's service.
func (e Engine) unitHead(how, doc, freshclam string) string {
	s := "[Unit]\nDescription=clamgate engine: one sandboxed clamd " + how + "\nDocumentation=man:clamd(8) " + doc + "\nBefore=clamgate.service\n"
	if e.FreshclamUnit != "" {
		s += fmt.Sprintf("# %s %s.\nWants=%s\n", freshclam, e.DBDir, e.FreshclamUnit)
	}
	return s
}

// Quadlet is the same container for podman 4.4 and later.
func (e Engine) Quadlet() string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(`# For podman >= 4.4 (Quadlet generates clamd.service from it). It is the same container as
# clamgate-clamd.service, which clamgate.service requires; use one of the two.
[Unit]
Description=clamgate engine: one sandboxed clamd in a container (Quadlet)
Documentation=man:clamd(8) man:podman-systemd.unit(5)
Before=clamgate.service
Conflicts=clamgate-clamd.service

[Container]
ContainerName=` + containerName + "\nImage=" + e.Image.Ref + "\n")
	if c := e.command(); c != nil {
		b.WriteString("Exec=" + strings.Join(c, " ") + "\n")
	}
	b.WriteString("UIDMap=" + idMap() + "\nGIDMap=" + idMap() + "\n")
	b.WriteString("DropCapability=all\n")
	if e.Image.Upstream {
		b.WriteString("AddCapability=chown dac_override fowner setgid setuid\nEnvironment=CLAMAV_NO_FRESHCLAMD=true\nEnvironment=CLAMAV_NO_MILTERD=true\n")
	} else {
		fmt.Fprintf(&b, "User=%d\nGroup=%d\nReadOnly=true\n", e.UID, e.GID)
	}
	b.WriteString("NoNewPrivileges=true\nNetwork=none\n")
	for _, v := range e.volumes() {
		b.WriteString("Volume=" + v + "\n")
	}
	fmt.Fprintf(&b, "\n[Service]\nExecStartPre=/usr/bin/systemd-tmpfiles --create %s\nRestart=on-failure\nTimeoutStartSec=600\n%s", TmpfilesConf, memDirectives(e.Mem))
	return b.String()
}

// confinement and lockdown are the sandbox both clamgate.service and the
// unit engine get; each adds its network and system call lines between.
// RestrictSUIDSGID= is the unit engine's only: under it systemd 252
// answers openat2 with ENOSYS, and the gateway opens every path scan with
// openat2 (found by the rehearsal; TestGatewayUnitKeepsOpenat2).
const (
	confinement = `ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
`
	lockdown = `SystemCallArchitectures=native
SystemCallErrorNumber=EPERM
MemoryDenyWriteExecute=yes
LockPersonality=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RemoveIPC=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
DevicePolicy=closed
KeyringMode=private
`
)

// GatewayUnitFile is clamgate.service. postfix's socket directory is
// optional in ReadWritePaths= ("-"): on a host without postfix it does not
// exist, and systemd would not start the gateway (226/NAMESPACE, seen in
// a booted Debian 12 with the unit engine). No RuntimeDirectory=: systemd
// would chown /run/clamgate recursively to clamgate at every start, taking
// the engine's and the clients' socket directories away from their owners;
// tmpfiles.d creates them instead. No PrivateUsers=: in a user namespace
// SO_PEERCRED reports every unmapped peer as uid 65534, which would defeat
// the policies' users/groups (systemd 257's PrivateUsers=identity would not).
// Listeners come from clamgate.socket: the TCP ones (ICAP for squid, the
// metrics endpoint) so the gateway itself keeps AF_UNIX only and a private
// network namespace: exposure 0.4 either way on systemd 252, where binding
// them itself cost AF_INET and the host's network (1.1); the unix ones so
// that a restart refuses no client. No RestrictSUIDSGID=: systemd cannot look into openat2's flags, so it makes
// openat2 fail with ENOSYS, and the gateway opens amavis's files with
// openat2 (RESOLVE_BENEATH); every path scan failed ("File path check
// failure: Function not implemented", found by the rehearsal). The gateway
// has no CAP_FSETID and writes only its sockets' directories.
func GatewayUnitFile(l Listening, binary string) string {
	net := "RestrictAddressFamilies=AF_UNIX\nPrivateNetwork=yes\nIPAddressDeny=any\n"
	if len(l.TCP) > 0 {
		net += "IPAddressAllow=localhost\n"
	}
	return gatewayUnit(l, binary, "Requires=clamgate-clamd.service\nAfter=clamgate-clamd.service network.target\n", net)
}

// EdgeGatewayUnitFile is clamgate.service on an edge host: no engine to
// require, and the pool to reach over TCP, so AF_INET/AF_INET6 and the
// host's network, restricted to the pool's addresses when it is named by
// them (EdgeNetwork).
func EdgeGatewayUnitFile(l Listening, binary string, e *Edge) string {
	deps := "Wants=network-online.target\nAfter=network-online.target\n"
	return gatewayUnit(l, binary, deps, EdgeNetwork(e))
}

// EdgeNetwork is the edge unit's network lines. With the pool named by
// addresses, IPAddressDeny=any allows loopback (clamgate.socket's
// listeners) and those addresses only; a pool named by DNS needs the
// resolver too, which IPAddressAllow= cannot name, so no address filter.
func EdgeNetwork(e *Edge) string {
	net := "# The pool is reached over TCP (mutual TLS): no PrivateNetwork=.\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"
	if ips := e.pinnedIPs(); ips != nil {
		return net + "IPAddressDeny=any\nIPAddressAllow=localhost " + strings.Join(ips, " ") + "\n"
	}
	return net + "# The pool is named by DNS: IPAddressAllow= takes addresses only, so no address filter.\n"
}

func gatewayUnit(l Listening, binary, deps, net string) string {
	sockets := ""
	if l.Any() {
		sockets = "Requires=clamgate.socket\nAfter=clamgate.socket\n"
	}
	return header + `[Unit]
Description=clamgate: one hardened clamd gateway for every local ClamAV client
Documentation=file:///usr/share/doc/clamgate/README.md
` + deps + sockets + `
[Service]
Type=notify
NotifyAccess=main
WatchdogSec=30
ExecStart=` + binary + ` serve --config ` + GatewayConf + `
ExecReload=/bin/kill -HUP $MAINPID
# READY=1 waits for clamd's first PONG: loading a full database takes a minute
# or more on a busy host.
TimeoutStartSec=600
Restart=on-failure
# A configuration clamgate refuses exits 78 (EX_CONFIG): a restart cannot fix it.
RestartPreventExitStatus=78
User=clamgate
Group=clamgate
UMask=0077
# The gateway streams, it never holds objects: measured 19 MiB with 64
# concurrent 100 MiB streams. The cap turns a leak into a restart.
MemoryHigh=96M
MemoryMax=128M
TasksMax=512
ReadWritePaths=/run/clamgate -` + PostfixSockDir + `
` + confinement + net + `SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
` + lockdown + `
[Install]
WantedBy=multi-user.target
`
}

// Listening is what clamgate.socket binds for the gateway: its TCP
// listeners and metrics endpoint, and the unix listeners that take their
// group from their (setgid) directory and share one mode.
type Listening struct {
	TCP  []string // host:port
	Unix []string // socket paths
	Mode string   // SocketMode= of the unix sockets
}

// Any tells whether there is a socket to bind.
func (l Listening) Any() bool { return len(l.TCP)+len(l.Unix) > 0 }

// GatewaySocketFile is clamgate.socket: systemd binds the gateway's
// listeners and holds them across restarts, so that clients wait in the
// backlog instead of being refused while the gateway restarts; the gateway
// matches them to its configuration by address. Its TCP sockets cost the
// hardened unit no network access. The unix sockets are bound by root in
// the directories tmpfiles.d makes (setgid: each socket gets its
// directory's group, amavis, postfix or clamav, as when the gateway binds
// it), hence tmpfiles first, for an apply and for a /run emptied since
// boot; they are owned by root instead of clamgate, which changes nothing
// under mode 0660. RemoveOnStop=: rollback leaves no socket file behind.
func GatewaySocketFile(l Listening) string {
	var b strings.Builder
	b.WriteString(header + "[Unit]\nDescription=clamgate's listening sockets, held by systemd across restarts\n\n[Socket]\n")
	if len(l.Unix) > 0 {
		fmt.Fprintf(&b, "ExecStartPre=/usr/bin/systemd-tmpfiles --create %s\n", TmpfilesConf)
	}
	for _, a := range l.TCP {
		b.WriteString("ListenStream=" + a + "\n")
	}
	for _, p := range l.Unix {
		b.WriteString("ListenStream=" + p + "\n")
	}
	if len(l.Unix) > 0 {
		b.WriteString("SocketMode=" + l.Mode + "\nRemoveOnStop=yes\n")
	}
	b.WriteString("Service=clamgate.service\n")
	if len(l.TCP) > 0 {
		b.WriteString("NoDelay=yes\n")
	}
	b.WriteString("\n[Install]\nWantedBy=sockets.target\n")
	return b.String()
}

// Tmpfiles creates the socket directories and the amavis ACL. The
// directories are setgid: a socket created inside gets the directory's
// group, so clamgate needs neither CAP_CHOWN nor membership in its
// clients' groups. /run/clamgate itself is root's: systemd binds the
// unix listeners in its subdirectories as root (clamgate.socket), and
// clamgate, owning the parent, could otherwise swap a subdirectory for a
// link and have root bind, chmod and (RemoveOnStop) unlink elsewhere.
func Tmpfiles(h *Host, e Engine) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("d /run/clamgate 0755 root root -\n")
	if e.Kind != KindEdge {
		fmt.Fprintf(&b, "d %s 2750 %d clamgate -\n", EngineDir, e.HostUID())
	}
	if e.Kind == KindContainer && !e.Image.Upstream {
		fmt.Fprintf(&b, "d %s 0700 %d %d 1d\n", EngineTmp, e.HostUID(), e.HostGID())
	}
	if h.Amavis != nil {
		fmt.Fprintf(&b, "d %s 2750 clamgate amavis -\n", AmavisSockDir)
		b.WriteString("# clamgate opens amavis's parts itself (clamd gets the descriptor); A+ re-applies\n# the ACL, recursively and as a default, whenever amavis's directory is re-created.\n")
		// Not setfacl's X (x on directories only): systemd-tmpfiles before 253
		// (Debian 12 has 252) rejects the whole ACL. With x, a part amavis
		// creates still gets only r: the mask follows amavis's mode, 0640.
		b.WriteString("# rx, not X: systemd-tmpfiles before 253 rejects X; amavis's files (0640) mask the x off.\n")
		fmt.Fprintf(&b, "a+ %s - - - - u:clamgate:x\n", path.Dir(h.Amavis.TmpDir))
		fmt.Fprintf(&b, "A+ %s - - - - u:clamgate:rx,d:u:clamgate:rx\n", h.Amavis.TmpDir)
	}
	if h.PostfixCF != "" {
		fmt.Fprintf(&b, "d %s 2750 clamgate postfix -\n", PostfixSockDir)
	}
	group := "root"
	if h.ClamdUser != "" {
		group = h.ClamdUser
	}
	fmt.Fprintf(&b, "d %s 2750 clamgate %s -\n", LocalSockDir, group)
	return b.String()
}

// Sysusers declares the gateway's user; it needs no supplementary group.
func Sysusers() string {
	return header + "u clamgate - \"clamgate ClamAV gateway\" - -\n"
}
