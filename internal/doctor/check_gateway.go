package doctor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
)

// gatewayEngineCheck is the first row: the gateway's own engine, as the
// gateway's /readyz reports it. A managed clamd that keeps exiting is
// named there with clamd's last error lines, so that a crash loop does not
// hide behind rows about other processes.
func gatewayEngineCheck() check {
	return check{
		id: "gateway-engine", title: "the gateway's own engine answers",
		expected: "serve runs, /readyz 200",
		source:   "Every verdict the gateway gives comes from this engine: while it is down or crash-looping, every scan answers an error. docs/doctor.md#gateway-engine",
		run:      checkGatewayEngine,
	}
}

func checkGatewayEngine(ctx context.Context, h *host) verdict {
	gws := h.named(isGateway)
	if len(gws) == 0 {
		st := Warn
		if h.env.Config != nil {
			st = Fail
		}
		return verdict{status: st, measured: "no clamgate serve process", fix: "start it: systemctl start clamgate (or scripts/run.sh to try it out)"}
	}
	gw := gws[0]
	addr := statusAddress(h.env, gw)
	if addr == "" {
		return verdict{status: Warn, measured: fmt.Sprintf("clamgate[%d] serves no status endpoint", gw.PID),
			fix: `set [server] http = "tcp:127.0.0.1:9310" (or --http) so that its readiness can be checked`}
	}
	code, body, err := readyz(ctx, h.env, addr)
	m := fmt.Sprintf("clamgate[%d] %s/readyz: ", gw.PID, addr)
	switch {
	case err != nil:
		return verdict{status: Fail, measured: m + err.Error(), fix: "check the gateway's log (journalctl -u clamgate)"}
	case code == http.StatusServiceUnavailable && strings.Contains(body, "built-in test database"):
		// It scans, but only for EICAR: not Ready on purpose (serve's /readyz).
		return verdict{status: Warn, measured: fmt.Sprintf("%s%d %s", m, code, body),
			fix: "install a real database (freshclam, package clamav-freshclam) and give it to [engine] database"}
	case code != http.StatusOK:
		return verdict{status: Fail, measured: fmt.Sprintf("%s%d %s", m, code, body),
			fix: "read clamd's error above and the gateway's log (journalctl -u clamgate); fix the state directory, database or user it names"}
	}
	return pass(m + body)
}

// isGateway: clamgate serve (not doctor itself, a scan or the engine's
// helper); a process whose command line cannot be read counts.
func isGateway(p *process) bool {
	return p.is("clamgate") && (len(p.Args) <= 1 || slices.Contains(p.Args, "serve"))
}

// statusAddress is the gateway's --http, else the configuration's http.
func statusAddress(env *Env, gw *process) string {
	for i, a := range gw.Args {
		if v, ok := strings.CutPrefix(a, "--http="); ok {
			return v
		}
		if a == "--http" && i+1 < len(gw.Args) {
			return gw.Args[i+1]
		}
	}
	if env.Config != nil {
		return env.Config.HTTP
	}
	return ""
}

func readyz(ctx context.Context, env *Env, addr string) (int, string, error) {
	hostPort, ok := strings.CutPrefix(addr, "tcp:")
	if !ok {
		return 0, "", fmt.Errorf("%q is not a tcp: address", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, env.timeout())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return env.Dial(ctx, "tcp", hostPort) },
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostPort+"/readyz", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// quickStart reports whether the host runs clamgate as the quick start
// does (scripts/run.sh: serve from flags, no configuration file) rather
// than deployed: then the rows about the host's deployment (its units,
// freshclam, amavis) describe a step not taken yet, not a fault.
func (h *host) quickStart() bool {
	if h.env.Offline || h.env.Config != nil || h.env.ConfigErr != nil {
		return false
	}
	gws := h.named(isGateway)
	return len(gws) > 0 && !slices.ContainsFunc(gws, func(p *process) bool {
		return slices.ContainsFunc(p.Args, func(a string) bool { return strings.HasPrefix(a, "--config") })
	})
}

// deploymentRow is a row about the host's deployment rather than about the
// running gateway and its engine: its units, freshclam, amavis, and a host
// clamd still running beside the gateway's (clamd-single), which deploy
// replaces. The rows about each clamd's privileges stay as they are: a
// root clamd is a fault whatever the mode.
func deploymentRow(id string) bool {
	switch id {
	case "config", "database", "freshclam", "units-masked", "units-wants", "amavis-scanner", "amavis-groups", "unit-exposure",
		"clamd-single":
		return true
	}
	return false
}

// notDeployed turns a deployment row's failure into a warning that says
// why, in quick-start mode.
func notDeployed(v verdict) verdict {
	if v.status != Fail {
		return v
	}
	v.status = Warn
	v.measured = "quick start, not deployed: " + v.measured
	v.fix = "applies once clamgate is deployed (clamgate deploy plan, then apply): " + v.fix
	return v
}
