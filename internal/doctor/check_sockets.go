package doctor

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"clamgate/internal/config"
)

func configCheck() check {
	return check{
		id: "config", title: "the gateway's configuration is present and valid", expected: "valid clamgate.toml",
		source: "The socket checks read each listener's policy from the gateway's configuration, and a file with errors would be refused at the next start or reload. docs/doctor.md#config", offline: true,
		run: func(_ context.Context, h *host) verdict {
			env := h.env
			switch {
			case env.ConfigErr != nil:
				return verdict{status: Fail, measured: env.ConfigErr.Error(), fix: "correct " + env.display(env.ConfigPath) + " (clamgate serve --config checks it too)"}
			case env.Config == nil:
				return verdict{status: Warn, measured: "no file at " + env.display(env.ConfigPath) + ": the socket checks are skipped", fix: "clamgate deploy apply, or name the file with --config"}
			}
			return pass(fmt.Sprintf("%s: %d listeners, policies %s", env.display(env.ConfigPath), len(env.Config.Listeners), strings.Join(env.Config.PolicyNames(), ",")))
		},
	}
}

// unixListeners are the config's unix sockets, the ones whose rights the
// kernel enforces.
func unixListeners(env *Env) []config.Listener {
	if env.Config == nil {
		return nil
	}
	var out []config.Listener
	for _, l := range env.Config.Listeners {
		if strings.HasPrefix(l.Address, "unix:") {
			out = append(out, l)
		}
	}
	return out
}

func socketModeCheck() check {
	return check{
		id: "socket-mode", title: "each unix listener has the configured mode, owner and group",
		expected: "as configured, not open to all",
		source:   "The socket's mode, owner and group are the only barrier between local users and the scanner: a wrong one opens it to everyone or locks the client out. docs/doctor.md#socket-mode",
		run:      checkSocketModes,
	}
}

func checkSocketModes(_ context.Context, h *host) verdict {
	ls := unixListeners(h.env)
	if len(ls) == 0 {
		return pass("no unix listener configured")
	}
	return fold(ls, "restart clamgate so that it recreates its sockets; never chmod them by hand, set mode/owner/group in clamgate.toml", func(l config.Listener) (Status, string) {
		st, m := judgeSocket(h.env, l, restricted(h.env.Config, l))
		return st, strings.TrimPrefix(l.Address, "unix:") + " " + m
	})
}

func restricted(cfg *config.Config, l config.Listener) bool {
	p := cfg.PolicyFor(l)
	return p != nil && p.Restricted()
}

func judgeSocket(env *Env, l config.Listener, policyRestricts bool) (Status, string) {
	fi, err := os.Lstat(env.path(strings.TrimPrefix(l.Address, "unix:")))
	if err != nil {
		return Warn, "missing (is clamgate running?)"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || !ok {
		return Fail, "is not a socket"
	}
	mode := fi.Mode().Perm()
	m := fmt.Sprintf("%s %s:%s", lsMode(fi.Mode()), ownerName(int(st.Uid)), groupName(int(st.Gid)))
	var wrong []string
	if mode != l.Mode.Perm() {
		wrong = append(wrong, fmt.Sprintf("mode %04o, configured %04o", mode, l.Mode.Perm()))
	}
	if l.Owner != "" && !names(l.Owner, int(st.Uid), ownerName) {
		wrong = append(wrong, "owner configured "+l.Owner)
	}
	if l.Group != "" && !names(l.Group, int(st.Gid), groupName) {
		wrong = append(wrong, "group configured "+l.Group)
	}
	switch {
	case len(wrong) > 0:
		return Fail, m + " (" + strings.Join(wrong, ", ") + ")"
	case mode&0o002 != 0 && !policyRestricts:
		return Warn, m + " (world-writable and the policy admits everyone)"
	}
	return Pass, m
}

// lsMode writes a mode as ls does: srw-rw----.
func lsMode(m os.FileMode) string {
	s := m.Perm().String()
	if m&os.ModeSocket != 0 {
		return "s" + s[1:]
	}
	return s
}

// names reports whether a user or group as the file writes it (a name, or
// the id) is id. The file keeps names; the host says what they are now.
func names(written string, id int, name func(int) string) bool {
	return written == strconv.Itoa(id) || written == name(id)
}

func ownerName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}

func socketRefusedCheck() check {
	return check{
		id: "socket-refused", title: "a user outside the policy is refused (doctor connects as nobody)",
		expected: "refused, never PONG",
		source:   "The mode bits are only what the file says: a real connection as an unrelated user shows that the kernel or the gateway refuses it. docs/doctor.md#socket-refused",
		run:      checkSocketRefused,
	}
}

func checkSocketRefused(ctx context.Context, h *host) verdict {
	ls := unixListeners(h.env)
	if len(ls) == 0 {
		return pass("no unix listener configured")
	}
	cred, name := outsider()
	return fold(ls, "mode 0660 and a dedicated group on the socket, or users/groups in the listener's policy", func(l config.Listener) (Status, string) {
		st, m := probeOutsider(ctx, h.env, l, cred, name)
		return st, strings.TrimPrefix(l.Address, "unix:") + ": " + m
	})
}

// outsider is nobody with no supplementary group: no policy should admit it.
func outsider() (Cred, string) {
	cred := Cred{UID: 65534, GID: 65534}
	if u, err := user.Lookup("nobody"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred.UID, cred.GID = uint32(uid), uint32(gid)
	}
	return cred, "nobody"
}

func probeOutsider(ctx context.Context, env *Env, l config.Listener, cred Cred, name string) (Status, string) {
	admits := func(written []string, id uint32, name func(int) string) bool {
		return slices.ContainsFunc(written, func(w string) bool { return names(w, int(id), name) })
	}
	if p := env.Config.PolicyFor(l); p != nil && (admits(p.Users, cred.UID, ownerName) || admits(p.Groups, cred.GID, groupName)) {
		return Warn, "policy " + p.Name + " admits " + name + ": not probed"
	}
	clamdProto := l.Protocol == "" || l.Protocol == config.ProtoClamd
	r := env.Probe.Probe(ctx, "unix", env.path(strings.TrimPrefix(l.Address, "unix:")), cred, clamdProto)
	return judgeRefusal(r, clamdProto, name)
}

// judgeRefusal: only a kernel refusal or the gateway's own refusal pass;
// a probe that could not run proves nothing either way.
func judgeRefusal(r ProbeResult, clamdProto bool, name string) (Status, string) {
	switch {
	case r.Refused:
		return Pass, name + " refused by the kernel (" + lastPart(r.Err) + ")"
	case r.Err != "" && !r.Connected:
		return Warn, "could not probe: " + r.Err
	case strings.Contains(r.Reply, "PONG"):
		return Fail, name + " got PONG"
	case strings.Contains(r.Reply, "ERROR") || r.Closed:
		return Pass, name + " refused by the gateway (" + cmp.Or(r.Reply, "connection closed") + ")"
	case !clamdProto:
		return Warn, name + " connected (the kernel did not refuse; this protocol's refusal is not probed)"
	}
	return Warn, name + " connected, unexpected reply " + strconv.Quote(r.Reply)
}

func lastPart(err string) string {
	if i := strings.LastIndex(err, ": "); i >= 0 {
		return err[i+2:]
	}
	return err
}
