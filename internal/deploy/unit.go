package deploy

import (
	"fmt"
	"strings"
)

// The engine's two forms.
const (
	KindContainer = "container" // podman: the image's clamd, Network=none, read-only root
	KindUnit      = "unit"      // the host's clamd under a hardened systemd unit
)

// Paths of the unit engine.
const (
	ClamdBinary     = "/usr/sbin/clamd"
	AppArmorProfile = "/etc/apparmor.d/usr.sbin.clamd"
	AppArmorLocal   = "/etc/apparmor.d/local/usr.sbin.clamd"
)

// engineKind resolves --engine: the container where podman is installed,
// else the unit, which needs the host's clamd user.
func engineKind(opt string, h *Host) (string, error) {
	kind := opt
	switch opt {
	case "":
		kind = KindUnit
		if h.HasPodman {
			kind = KindContainer
		}
	case KindContainer, KindUnit:
	default:
		return "", fmt.Errorf("--engine %q: want %s or %s", opt, KindContainer, KindUnit)
	}
	if kind == KindUnit && h.ClamdUID < 0 {
		return "", fmt.Errorf("--engine unit runs the host's clamd as its user, and the tree has no clamav (or clamscan) user: install clamav-daemon")
	}
	return kind, nil
}

// NewUnitEngine runs the host's own clamd as its own user.
func NewUnitEngine(h *Host) Engine {
	e := Engine{Kind: KindUnit, User: h.ClamdUser, UID: h.ClamdUID, GID: h.ClamdGID, SocketInside: EngineDir,
		DBDir: h.DBDir, Mem: SizeMemory(h.DBBytes)}
	if h.Freshclam != nil {
		e.FreshclamUnit = h.Freshclam.Name
	}
	return e
}

// dbInside is the database directory as clamd sees it.
func (e Engine) dbInside() string {
	if e.Kind == KindUnit {
		return e.DBDir
	}
	return dbMount
}

func (p *Plan) engineChanges() []Change {
	e, h := p.Engine, p.Host
	if e.Kind == KindEdge {
		return nil
	}
	if e.Kind != KindUnit {
		return []Change{
			file(EngineUnit, e.PlainUnit(), "the engine container, podman run"),
			file(QuadletFile, e.Quadlet(), "the engine container, Quadlet"),
		}
	}
	c := []Change{file(EngineUnit, e.Unit(), "the engine, the host's clamd under a hardened unit")}
	if h.AppArmorClamd != "" {
		c = append(c, file(AppArmorLocal, AppArmorEdit(string(h.read(AppArmorLocal))), "clamd's AppArmor profile: the engine's configuration and socket"))
	}
	return c
}

// Unit is clamgate-clamd.service for hosts without a container runtime:
// the same sandbox as clamgate.service (no capability, no network, a
// read-only system, a system call allow list) around the host's clamd,
// with the database read-only and the socket directory its only write.
// An empty /var with only the database bound in hides the mail spools
// and amavis's files, which clamd, given descriptors, never opens itself.
func (e Engine) Unit() string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(e.unitHead("under systemd (no container runtime)", "man:systemd.exec(5)", "freshclam stays as it is; clamd only reads"))
	fmt.Fprintf(&b, `
[Service]
Type=simple
ExecStartPre=+/usr/bin/systemd-tmpfiles --create %s
ExecStart=%s --foreground=true --config-file=%s
ExecReload=/bin/kill -USR2 $MAINPID
Restart=on-failure
TimeoutStartSec=600
User=%s
Group=%s
UMask=0007
LimitCORE=0
LimitNOFILE=16384
TasksMax=128
TemporaryFileSystem=/var:ro
BindReadOnlyPaths=%s
ReadWritePaths=%s
`, TmpfilesConf, ClamdBinary, ClamdConf, e.User, e.User, e.DBDir, EngineDir)
	// @resources stays: clamd reads its limits (prlimit64) at start.
	b.WriteString(confinement + "RestrictAddressFamilies=AF_UNIX\nPrivateNetwork=yes\nIPAddressDeny=any\n" +
		"SystemCallFilter=@system-service\nSystemCallFilter=~@privileged\nRestrictSUIDSGID=yes\n" + lockdown)
	b.WriteString(memDirectives(e.Mem))
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

const appArmorMark = "# clamgate deploy --engine unit"

// AppArmorEdit lets Debian's clamd profile read the engine's clamd.conf
// and make its socket, which it confines to /etc/clamav and /run/clamav.
func AppArmorEdit(old string) string {
	if strings.Contains(old, appArmorMark) {
		return old
	}
	if old != "" && !strings.HasSuffix(old, "\n") {
		old += "\n"
	}
	return old + appArmorMark + ": the engine's configuration and socket\n" +
		ClamdConf + " r,\n" + EngineDir + "/ r,\n" + EngineDir + "/** rwk,\n"
}
