package doctor

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// isReplaced names the daemons the gateway replaces, and Debian's socket
// unit, which starts clamav-daemon on the first connection. clamd.service
// is not one: it is the name Quadlet gives the shared engine's container.
func isReplaced(name string) bool {
	switch name {
	case "clamav-daemon.service", "clamav-daemon.socket", "clamav-milter.service", "c-icap.service":
		return true
	}
	return strings.HasPrefix(name, "clamd@") && strings.HasSuffix(name, ".service") && name != "clamd@.service"
}

// backendUnits are replaced units the gateway itself uses as its clamd,
// recognized by their socket: those must keep running.
func backendUnits(env *Env) map[string]bool {
	out := map[string]bool{}
	if env.Config == nil {
		return out
	}
	for _, b := range append(append([]string{}, env.Config.Backends...), env.Config.Fallback) {
		path := strings.TrimPrefix(b, "unix:")
		switch {
		case path == "/run/clamav/clamd.ctl" || path == "/var/run/clamav/clamd.ctl":
			out["clamav-daemon.service"] = true
		case strings.HasPrefix(path, "/run/clamd.") && strings.HasSuffix(path, "/clamd.sock"):
			inst := strings.TrimSuffix(strings.TrimPrefix(path, "/run/clamd."), "/clamd.sock")
			out["clamd@"+inst+".service"] = true
		}
	}
	return out
}

func unitsMaskedCheck() check {
	return check{
		id: "units-masked", title: "the replaced clamd units are masked, not just disabled",
		expected: "masked (-> /dev/null)",
		source:   "A disabled unit still starts when another unit or a socket asks for it; only a masked one cannot. docs/doctor.md#units-masked", offline: true,
		run: checkUnitsMasked,
	}
}

func checkUnitsMasked(_ context.Context, h *host) verdict {
	t := h.units()
	keep := backendUnits(h.env)
	present := map[string]bool{}
	for name, file := range t.files {
		if isReplaced(name) && (file != "" || t.masked[name]) {
			present[name] = true
		}
	}
	for _, d := range t.deps {
		if isReplaced(d.to) {
			present[d.to] = true
		}
	}
	if len(present) == 0 {
		return pass("no replaced clamd unit installed")
	}
	v := verdict{status: Pass}
	var parts, unmasked []string
	for _, name := range slices.Sorted(maps.Keys(present)) {
		switch {
		case t.isMasked(name):
			parts = append(parts, name+" masked")
		case keep[name]:
			parts = append(parts, name+" not masked (the gateway's backend)")
		default:
			v.status = Fail
			parts = append(parts, name+" NOT masked")
			unmasked = append(unmasked, name)
		}
	}
	v.measured = joinSemi(parts)
	v.fix = "systemctl mask --now " + strings.Join(unmasked, " ")
	return v
}

func unitsWantsCheck() check {
	return check{
		id: "units-wants", title: "no unit pulls a replaced clamd back in (Wants=, Requires=, BindsTo=)",
		expected: "none, or target masked",
		source:   "A Wants= or Requires= on a replaced clamd starts it again at the next restart of the unit that names it, unless the clamd unit is masked. docs/doctor.md#units-wants", offline: true,
		run: checkUnitsWants,
	}
}

func checkUnitsWants(_ context.Context, h *host) verdict {
	t := h.units()
	keep := backendUnits(h.env)
	v := verdict{status: Pass}
	var parts, fix []string
	for _, d := range t.deps {
		if !isReplaced(d.to) || keep[d.to] {
			continue
		}
		line := fmt.Sprintf("%s %s=%s (%s)", d.from, d.kind, d.to, d.where)
		switch {
		case t.isMasked(d.to):
			parts = append(parts, line+": target masked, harmless")
		case t.isMasked(d.from):
			parts = append(parts, line+": unit masked, harmless")
		default:
			v.status = Fail
			parts = append(parts, line+": WILL START IT")
			if !slices.Contains(fix, d.to) {
				fix = append(fix, d.to)
			}
		}
	}
	if len(parts) == 0 {
		return pass("no unit depends on a replaced clamd unit")
	}
	v.measured = joinSemi(parts)
	v.fix = "systemctl mask " + strings.Join(fix, " ") + " (a Wants= on a masked unit fails without blocking its dependent)"
	return v
}

func exposureCheck() check {
	return check{
		id: "unit-exposure", title: "the gateway's own unit is hardened (systemd-analyze security)", expected: "<= 1.0, on an edge 1.5 (warn <= 3.0)",
		source: "The gateway opens clients' files and holds their sockets; its unit should grant it nothing more (Debian's clamav-daemon.service scores 9.6). docs/doctor.md#unit-exposure", offline: true,
		run: checkExposure,
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for [^:]+: ([0-9.]+) (\S+)`)

func checkExposure(ctx context.Context, h *host) verdict {
	t := h.units()
	file := t.find(GatewayUnit)
	fix := "clamgate deploy apply writes the hardened " + GatewayUnit
	if file == "" {
		return verdict{status: Warn, measured: GatewayUnit + " not found", fix: fix}
	}
	scored, shown, err := withDropIns(file, t.dropInsOf(GatewayUnit), h.env)
	if err != nil {
		return verdict{status: Warn, measured: "cannot read " + GatewayUnit + ": " + err.Error(), fix: fix}
	}
	if scored != file {
		defer os.RemoveAll(filepath.Dir(scored))
	}
	out, err := h.env.Analyze(ctx, scored)
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		msg := lastLine(out)
		if err != nil {
			msg = err.Error() + ": " + msg
		}
		return verdict{status: Warn, measured: "systemd-analyze gave no score: " + msg, fix: "install systemd (systemd-analyze) to score " + GatewayUnit}
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	measured := fmt.Sprintf("%s: %s %s", shown, m[1], m[2])
	// An edge's gateway reaches the pool over TCP: AF_INET and the host's
	// network cost it about 0.8 (deploy's TestEdgeUnitHardening).
	limit := 1.0
	if isEdge(h.env) {
		limit = 1.5
		measured += " (edge: reaches the pool over TCP)"
	}
	switch {
	case score <= limit:
		return pass(measured)
	case score <= 3.0:
		return verdict{status: Warn, measured: measured, fix: "restore the hardening options of " + GatewayUnit + " (clamgate deploy apply)"}
	}
	return verdict{status: Fail, measured: measured, fix: fix}
}

// withDropIns is the unit as systemd reads it, its drop-ins appended in
// order (a drop-in continues the sections it names), in a temporary
// directory under the unit's name, which systemd-analyze scores it by: on
// a host with the Debian package, clamgate deploy hardens the packaged
// unit with a drop-in, and the package's file alone would score too high.
// shown names the files.
func withDropIns(file string, dropIns []string, env *Env) (scored, shown string, err error) {
	if len(dropIns) == 0 {
		return file, env.display(file), nil
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return "", "", err
	}
	names := []string{env.display(file)}
	for _, d := range dropIns {
		b, err := os.ReadFile(d)
		if err != nil {
			return "", "", err
		}
		src = append(append(src, '\n'), b...)
		names = append(names, env.display(d))
	}
	dir, err := os.MkdirTemp("", "clamgate-doctor-")
	if err != nil {
		return "", "", err
	}
	scored = filepath.Join(dir, GatewayUnit)
	return scored, strings.Join(names, " + "), os.WriteFile(scored, src, 0o644)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
