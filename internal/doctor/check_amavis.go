package doctor

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// amavisConfigs are where Debian (conf.d, read in name order) and
// Fedora/Rocky (one file) keep amavisd's configuration.
func amavisConfigs(env *Env) []string {
	files, _ := filepath.Glob(env.path("/etc/amavis/conf.d/*"))
	sort.Strings(files)
	for _, f := range []string{"/etc/amavisd/amavisd.conf", "/etc/amavisd.conf"} {
		if exists(env.path(f)) {
			files = append(files, env.path(f))
		}
	}
	return files
}

var (
	clamdEntryRE  = regexp.MustCompile(`\[\s*['"]ClamAV-clamd[^'"]*['"]`)
	entrySocketRE = regexp.MustCompile(`\[\s*["'](?:CONTSCAN|SCAN|MULTISCAN)[^"']*["']\s*,\s*\[?\s*["']([^"']+)["']`)
)

// scannerEntry is the socket of the last uncommented ClamAV-clamd entry,
// which is the one amavisd uses when several files define @av_scanners.
type scannerEntry struct {
	file, socket string
}

func findScannerEntry(env *Env) (scannerEntry, bool) {
	var found scannerEntry
	ok := false
	for _, f := range amavisConfigs(env) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		text := stripPerlComments(string(b))
		for _, loc := range clamdEntryRE.FindAllStringIndex(text, -1) {
			rest := text[loc[1]:min(len(text), loc[1]+400)]
			if m := entrySocketRE.FindStringSubmatch(rest); m != nil {
				found, ok = scannerEntry{file: env.display(f), socket: m[1]}, true
			}
		}
	}
	return found, ok
}

// stripPerlComments drops what follows a # outside quotes, which is where
// distributions keep the entries they ship disabled.
func stripPerlComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		var quote rune
		cut := len(line)
		for i, r := range line {
			switch {
			case quote != 0 && r == quote:
				quote = 0
			case quote == 0 && (r == '"' || r == '\''):
				quote = r
			case quote == 0 && r == '#':
				cut = i
			}
			if cut != len(line) {
				break
			}
		}
		b.WriteString(line[:cut])
		b.WriteByte('\n')
	}
	return b.String()
}

// entryAddress turns amavis's socket notation into a dialable address.
// A unix socket is a file of the host, so it is found under Root.
func entryAddress(env *Env, socket string) (network, address string) {
	if strings.HasPrefix(socket, "/") {
		return "unix", env.path(socket)
	}
	return "tcp", strings.Trim(socket, "[]")
}

func amavisScannerCheck() check {
	return check{
		id: "amavis-scanner", title: "amavis's ClamAV-clamd entry points at a socket that answers", expected: "entry, socket, PONG",
		source: "When its ClamAV-clamd entry does not answer, amavis falls back to clamscan, which loads the whole database for every message (tens of seconds each). docs/doctor.md#amavis-scanner", offline: true,
		run: checkAmavisScanner,
	}
}

func checkAmavisScanner(ctx context.Context, h *host) verdict {
	if len(amavisConfigs(h.env)) == 0 {
		return pass("amavis is not installed")
	}
	e, ok := findScannerEntry(h.env)
	fix := `in amavisd.conf: ['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {}\n", "/run/clamgate/amavis/clamd.sock"], ...] (docs/amavis.md)`
	if !ok {
		return verdict{status: Fail, measured: "no uncommented ClamAV-clamd entry in " + h.env.display(h.env.path("/etc/amavis")), fix: fix}
	}
	m := e.file + ": " + e.socket
	if h.env.Offline {
		return pass(m + " (offline: not contacted)")
	}
	network, address := entryAddress(h.env, e.socket)
	if network == "unix" && !exists(address) {
		return verdict{status: Fail, measured: m + ": no such socket", fix: fix}
	}
	reply, err := ping(ctx, h.env, network, address)
	if strings.Contains(reply, "Access denied") && network == "unix" {
		// clamgate's amavis listener admits amavis, not root: ask as amavis.
		if r, who, ok := pingAsAmavis(ctx, h.env, address); ok {
			reply, err = r.Reply, nil
			m += " (as " + who + "; root is refused by the listener's policy)"
		}
	}
	switch {
	case err != nil && reply == "":
		return verdict{status: Fail, measured: m + ": " + err.Error(), fix: "start the engine behind " + e.socket + ", or " + fix}
	case !strings.Contains(reply, "PONG"):
		return verdict{status: Fail, measured: m + ": answered " + strconv.Quote(reply), fix: fix}
	}
	return pass(m + ": PONG")
}

// pingAsAmavis probes the socket with the amavis user's uid and gid and no
// supplementary group (amavis-groups checks the running daemon's own).
func pingAsAmavis(ctx context.Context, env *Env, address string) (ProbeResult, string, bool) {
	u, err := user.Lookup("amavis")
	if err != nil || env.Probe == nil {
		return ProbeResult{}, "", false
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	r := env.Probe.Probe(ctx, "unix", address, Cred{UID: uint32(uid), GID: uint32(gid), Groups: []uint32{}}, true)
	return r, fmt.Sprintf("amavis, uid %d", uid), true
}

func amavisGroupsCheck() check {
	return check{
		id: "amavis-groups", title: "the running amavisd's uid and groups can open its clamd socket",
		expected: "its uid/groups get PONG",
		source:   "Amavisd drops its supplementary groups when it starts, so a socket it may open only through such a group refuses it. docs/doctor.md#amavis-groups",
		run:      checkAmavisGroups,
	}
}

func checkAmavisGroups(ctx context.Context, h *host) verdict {
	e, ok := findScannerEntry(h.env)
	if !ok {
		return pass("no ClamAV-clamd entry (see amavis-scanner)")
	}
	network, address := entryAddress(h.env, e.socket)
	if network != "unix" {
		return pass(e.socket + " is TCP: groups do not matter")
	}
	procs := h.named(isAmavisd)
	if len(procs) == 0 {
		return verdict{status: Warn, measured: "no amavisd process: trap 1 cannot be verified", fix: "start amavisd and run doctor again"}
	}
	fi, err := os.Stat(address)
	if err != nil {
		return verdict{status: Fail, measured: e.socket + ": " + err.Error(), fix: "see amavis-scanner"}
	}
	st := fi.Sys().(*syscall.Stat_t)
	fix := fmt.Sprintf("@daemon_groups = qw(amavis %s); in amavisd.conf, or give amavis a socket it owns (clamgate listener owner/group)", groupName(int(st.Gid)))
	return fold(masters(procs), fix, func(p *process) (Status, string) {
		return judgeAmavisd(ctx, h.env, p, address, fi.Mode(), st)
	})
}

// masters keeps one process per distinct credential set: amavisd's
// children share their master's, and probing each would only repeat it.
func masters(ps []*process) []*process {
	seen := map[string]bool{}
	var out []*process
	for _, p := range ps {
		key := fmt.Sprint(p.UID[1], p.GID[1], p.Groups)
		if !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	return out
}

// judgeAmavisd compares the mode bits with the process's credentials and
// then tries them for real: an ACL (out of scope of the bit arithmetic)
// shows up as a disagreement the probe settles.
func judgeAmavisd(ctx context.Context, env *Env, p *process, path string, mode os.FileMode, st *syscall.Stat_t) (Status, string) {
	creds := fmt.Sprintf("%s uid %d gid %d groups %v", p.who(), p.UID[1], p.GID[1], p.Groups)
	bitsOK := modeAdmits(mode, st, p)
	acl := hasACL(path)
	groups := make([]uint32, 0, len(p.Groups))
	for _, g := range p.Groups {
		groups = append(groups, uint32(g))
	}
	r := env.Probe.Probe(ctx, "unix", path, Cred{UID: uint32(p.UID[1]), GID: uint32(p.GID[1]), Groups: groups}, true)
	probed := strings.Contains(r.Reply, "PONG")
	note := ""
	if acl {
		note = ", socket has an ACL (not evaluated, the probe decides)"
	}
	switch {
	case r.Err != "" && !r.Connected && !r.Refused:
		if bitsOK {
			return Pass, creds + ": mode admits it; probe failed: " + r.Err + note
		}
		return Fail, creds + ": mode " + lsMode(mode) + " does not admit it; probe failed: " + r.Err + note
	case probed:
		return Pass, creds + ": PONG" + note
	}
	return Fail, creds + ": refused (" + cmp.Or(r.Err, r.Reply) + "), socket " + lsMode(mode) + " " + groupName(int(st.Gid)) + note
}

// modeAdmits is the kernel's DAC decision for connect(2): write permission.
func modeAdmits(mode os.FileMode, st *syscall.Stat_t, p *process) bool {
	uid, gid := p.UID[1], p.GID[1]
	switch {
	case uid == 0:
		return true
	case uint32(uid) == st.Uid:
		return mode&0o200 != 0
	case uint32(gid) == st.Gid || slices.Contains(p.Groups, int(st.Gid)):
		return mode&0o020 != 0
	}
	return mode&0o002 != 0
}

func hasACL(path string) bool {
	n, err := unix.Lgetxattr(path, "system.posix_acl_access", nil)
	return err == nil && n > 0
}
