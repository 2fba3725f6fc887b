package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Clients is what the gateway serves, from what Inspect found.
type Clients struct {
	Amavis, Postfix, Squid bool
}

// ClientsOf lists the detected clients.
func ClientsOf(h *Host) Clients {
	return Clients{Amavis: h.Amavis != nil, Postfix: h.PostfixCF != "", Squid: h.SquidConf != ""}
}

// Names lists the detected clients for messages.
func (c Clients) Names() []string {
	var n []string
	for _, x := range []struct {
		on   bool
		name string
	}{{c.Amavis, "amavis"}, {c.Postfix, "postfix"}, {c.Squid, "squid"}} {
		if x.on {
			n = append(n, x.name)
		}
	}
	return n
}

// GatewayTOML is clamgate.toml: one listener and one policy per client.
// Unix listeners set no owner or group: their setgid directory gives the
// socket its client's group (see Tmpfiles).
func GatewayTOML(h *Host, e Engine) string {
	var b strings.Builder
	b.WriteString(header)
	which := "the container's"
	if e.Kind == KindUnit {
		which = "the unit's"
	}
	fmt.Fprintf(&b, "[backend]\naddress = \"unix:%s\"   # %s clamd, reachable by clamgate only\nstream_max_length = %q\nmax_jobs = %d\n", e.Socket(), which, streamMax, maxThreads)
	// podman runs with --cgroups=split: the container is inside its unit's cgroup.
	b.WriteString("cgroup = \"/sys/fs/cgroup/system.slice/clamgate-clamd.service\"   # engine memory metrics\n\n")
	fmt.Fprintf(&b, "[database]\ndir = %q\nwatch = true\nreload = \"frugal\"   # clamd.conf has ConcurrentDatabaseReload no, SelfCheck 0, IdleTimeout 2\n\n", h.DBDir)
	// Bound by clamgate.socket, like every TCP listener: it costs the
	// hardened unit nothing.
	b.WriteString("[server]\nhttp = \"tcp:127.0.0.1:9310\"   # /metrics, /healthz, /readyz\n")
	b.WriteString(clientListeners(h))
	return b.String()
}

// clientListeners are one listener and one policy per client found, and
// the host-wide socket: the same whether the engine is local or a pool.
func clientListeners(h *Host) string {
	var b strings.Builder
	c := ClientsOf(h)
	if c.Amavis {
		fmt.Fprintf(&b, `
# amavis: CONTSCAN over a socket of group amavis, amavisd's own group (no @daemon_groups needed).
[[listener]]
address = "unix:%s/clamd.sock"
protocol = "clamd"
policy = "amavis"
mode = "0660"

[policy.amavis]
roots = [%q]
# amavis owns its home, the root's parent: clamgate holds the root open from start, so a rename
# changes nothing, and refuses a symlink there at start.
allow_writable_root_ancestors = true
users = ["amavis"]
max_concurrent = 8
`, AmavisSockDir, h.Amavis.TmpDir)
	}
	if c.Postfix {
		fmt.Fprintf(&b, `
# postfix: smtpd and cleanup connect as user postfix.
[[listener]]
address = "unix:%s/milter.sock"
protocol = "milter"
policy = "postfix"
mode = "0660"

[policy.postfix]
users = ["postfix"]
max_concurrent = 8

[milter]
on_infected = "reject"
on_failure = "tempfail"
`, PostfixSockDir)
	}
	if c.Squid {
		b.WriteString(`
# squid: ICAP on loopback, where c-icap listened.
[[listener]]
address = "tcp:127.0.0.1:1344"
protocol = "icap"
policy = "squid"

[policy.squid]
commands = ["PING", "VERSION", "INSTREAM"]
max_concurrent = 8

[icap]
service = "avscan"
on_failure = "error"   # squid's bypass=0: a download that cannot be scanned is refused
`)
	}
	b.WriteString(localListener(h))
	return b.String()
}

// LocalSockDir holds the host-wide socket: the one clamdscan and other
// ad-hoc clients reach through clamd.conf's LocalSocket (ClamdConfEdit).
const LocalSockDir = "/run/clamgate/local"

// LocalSocket is that socket.
const LocalSocket = LocalSockDir + "/clamd.sock"

// localListener serves root and the clamav group, as Debian's clamd.ctl
// did (minus everyone else: Debian's is mode 666). Path scans may name any
// file, since that is what clamdscan sends by default; the gateway opens
// it as its own user, so, as with clamd running as clamav, a file it
// cannot read needs --fdpass or --stream. No SHUTDOWN or RELOAD.
func localListener(h *Host) string {
	groups := ""
	if h.ClamdUser != "" {
		groups = fmt.Sprintf("groups = [%q]\n", h.ClamdUser)
	}
	return fmt.Sprintf(`
# clamdscan and ad-hoc scans: root and the clamav group, through clamd.conf's LocalSocket.
[[listener]]
address = "unix:%s"
protocol = "clamd"
policy = "local"
mode = "0660"

[policy.local]
users = ["root"]
%sroots = ["/"]
commands = ["PING", "VERSION", "VERSIONCOMMANDS", "STATS", "SCAN", "CONTSCAN", "MULTISCAN", "ALLMATCHSCAN", "INSTREAM", "FILDES"]
max_concurrent = 2
`, LocalSocket, groups)
}

// clamdscanConfs are the clamd.conf files clamdscan reads by default
// (Debian, RHEL).
var clamdscanConfs = []string{"/etc/clamav/clamd.conf", "/etc/clamd.d/scan.conf"}

const localMark = "# clamgate deploy: "

// ClamdConfEdit points clamd.conf's LocalSocket, which clamdscan reads to
// find clamd, at the gateway's host-wide socket: the old line is kept as
// a comment, and a second apply changes nothing. clamd itself no longer
// reads this file (its units are masked); rollback restores it.
func ClamdConfEdit(conf string) string {
	lines := strings.Split(conf, "\n")
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "LocalSocket" {
			lines[i] = localMark + "was: " + l
		}
	}
	out := strings.Join(lines, "\n")
	if conf != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	ours := localMark + "clamdscan scans through the gateway\nLocalSocket " + LocalSocket + "\n"
	if strings.Contains(conf, ours) {
		return conf
	}
	return out + ours
}

// AmavisScanner is the scanner entry pointing amavis at its clamgate socket.
// The clamscan backup scanner of the distribution's configuration stays.
func AmavisScanner() string {
	return `@av_scanners = (
  ['ClamAV-clamd via clamgate',
    \&ask_daemon, ["CONTSCAN {}\n", "` + AmavisSockDir + `/clamd.sock"],
    qr/\bOK$/m, qr/\bFOUND$/m,
    qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
`
}

// AmavisConfD is Debian's conf.d file, read after the distribution's 15-av_scanners.
const AmavisConfD = "/etc/amavis/conf.d/60-clamgate"

// AmavisFile is the whole conf.d file for Debian.
func AmavisFile() string {
	return header + "use strict;\n\n" + AmavisScanner() + "\n1;  # ensure a defined return\n"
}

const (
	beginMark = "# BEGIN clamgate deploy"
	endMark   = "# END clamgate deploy"
)

// AmavisEdit puts the scanner entry between markers at the end of a
// single-file amavisd.conf (RHEL): Perl reads it last, so it overrides the
// file's own @av_scanners; the markers make a second apply a no-op.
func AmavisEdit(conf string) string {
	block := beginMark + "\n" + header + AmavisScanner() + "1;\n" + endMark + "\n"
	if i := strings.Index(conf, beginMark); i >= 0 {
		if j := strings.Index(conf[i:], endMark+"\n"); j >= 0 {
			return conf[:i] + block + conf[i+j+len(endMark)+1:]
		}
	}
	if conf != "" && !strings.HasSuffix(conf, "\n") {
		conf += "\n"
	}
	return conf + block
}

// SquidSnippet is included from squid.conf.
const SquidSnippet = "/etc/squid/conf.d/clamgate.conf"

// SquidFile is the ICAP configuration; bypass=0 fails closed like the gateway.
// It sets no preview: squid previews only when the service's OPTIONS asks
// (Preview: N), and clamgate asks only when [icap] preview is set, so the
// service alone decides. REQMOD scans what users send (uploads, form
// posts), RESPMOD what they fetch.
func SquidFile() string {
	return header + `icap_enable on
# No icap_preview_*: clamgate's OPTIONS says whether to preview ([icap] preview, 0 = no preview).
icap_service_failure_limit -1
# REQMOD: request bodies users send (uploads, form posts); RESPMOD: what they download.
icap_service clamgate_req reqmod_precache icap://127.0.0.1:1344/avscan bypass=0
icap_service clamgate_resp respmod_precache icap://127.0.0.1:1344/avscan bypass=0
adaptation_access clamgate_req allow all
adaptation_access clamgate_resp allow all
`
}

var (
	icapServiceRE   = regexp.MustCompile(`^\s*icap_service\s+(\S+)\s+\S+\s+(?:\S+=\S+\s+)*icap://(127\.0\.0\.1|localhost|\[::1\]):1344/`)
	squidIncludesRE = regexp.MustCompile(`(?m)^\s*include\s+/etc/squid/conf\.d/(\*|clamgate)\.conf\s*$`)
)

// SquidEdit comments out the ICAP services of the c-icap being replaced
// (and the access rules naming them) and includes our snippet when
// squid.conf does not already include conf.d.
func SquidEdit(conf string) string {
	lines := strings.Split(conf, "\n")
	var old []string
	for _, l := range lines {
		if m := icapServiceRE.FindStringSubmatch(l); m != nil && !strings.HasPrefix(m[1], "clamgate_") {
			old = append(old, m[1])
		}
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && (slices.Contains(old, f[1]) && (f[0] == "icap_service" || strings.HasPrefix(f[0], "adaptation_"))) {
			lines[i] = "# clamgate deploy, c-icap replaced: " + l
		}
	}
	out := strings.Join(lines, "\n")
	if !squidIncludesRE.MatchString(out) {
		if !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += "# clamgate deploy: ICAP through clamgate\ninclude " + SquidSnippet + "\n"
	}
	return out
}

// milterSocket is how main.cf names the socket: chrooted smtpd sees
// /var/spool/postfix as its root.
func milterSocket(chroot bool) string {
	if chroot {
		return "unix:/clamgate/milter.sock"
	}
	return "unix:" + PostfixSockDir + "/milter.sock"
}

func isClamavMilter(v string) bool {
	return strings.Contains(v, "clamav-milter") || strings.Contains(v, "clamav/milter")
}

// milterList drops clamav-milter from a milter list and adds ours, keeping
// every other milter (opendkim...) in place.
func milterList(v, ours string) string {
	if strings.TrimSpace(v) == "$smtpd_milters" {
		return "$smtpd_milters"
	}
	var out []string
	for _, m := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if !isClamavMilter(m) {
			out = append(out, m)
		}
	}
	if !slices.Contains(out, ours) {
		out = append(out, ours)
	}
	return strings.Join(out, ", ")
}

// PostfixEdit sets the milter parameters in main.cf. main.cf has no
// include, so it is edited in place (backed up like every other file): a
// changed line is kept above its replacement as a comment, absent ones are
// appended; values already right are left alone, so a second apply is a no-op.
func PostfixEdit(conf string, chroot bool) string {
	ours := milterSocket(chroot)
	want := []struct{ key, val string }{
		{"smtpd_milters", ""}, {"non_smtpd_milters", ""},
		{"milter_default_action", "tempfail"}, {"milter_protocol", "6"},
	}
	entries := postfixEntries(conf)
	var b strings.Builder
	done := map[string]bool{}
	for _, e := range entries {
		i := slices.IndexFunc(want, func(w struct{ key, val string }) bool { return w.key == e.key })
		if i < 0 {
			b.WriteString(e.text)
			continue
		}
		done[e.key] = true
		val := want[i].val
		if val == "" {
			val = milterList(e.value, ours)
		}
		if val == e.value {
			b.WriteString(e.text)
			continue
		}
		for _, l := range strings.SplitAfter(strings.TrimSuffix(e.text, "\n"), "\n") {
			b.WriteString("# clamgate deploy, was: " + strings.TrimSuffix(l, "\n") + "\n")
		}
		fmt.Fprintf(&b, "%s = %s\n", e.key, val)
	}
	out := b.String()
	var missing []string
	for _, w := range want {
		if !done[w.key] {
			val := w.val
			if w.key == "smtpd_milters" {
				val = ours
			} else if w.key == "non_smtpd_milters" {
				val = "$smtpd_milters"
			}
			missing = append(missing, w.key+" = "+val)
		}
	}
	if len(missing) > 0 {
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += "# clamgate deploy: scan mail through clamgate's milter\n" + strings.Join(missing, "\n") + "\n"
	}
	return out
}

type postfixEntry struct {
	key, value, text string // text: the lines as in the file, continuation lines included
}

// postfixEntries splits main.cf into parameters (a line starting in column
// one, plus its indented continuation lines) and other text.
func postfixEntries(conf string) []postfixEntry {
	var out []postfixEntry
	for _, l := range strings.SplitAfter(conf, "\n") {
		if l == "" {
			continue
		}
		cont := (l[0] == ' ' || l[0] == '\t') && strings.TrimSpace(l) != ""
		if cont && len(out) > 0 && out[len(out)-1].key != "" {
			last := &out[len(out)-1]
			last.text += l
			last.value += " " + strings.TrimSpace(l)
			continue
		}
		e := postfixEntry{text: l}
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") && !cont {
			e.key, e.value = strings.TrimSpace(k), strings.TrimSpace(v)
		}
		out = append(out, e)
	}
	return out
}
