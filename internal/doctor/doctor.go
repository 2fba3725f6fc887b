// Package doctor verifies, on a live host or on a tree standing for one, the
// hardening checklist of a shared clamd (docs/deploy.md), its two traps
// (amavisd's dropped groups, a Wants= that restarts a replaced clamd), plus
// the gateway's own hardening: one row per check, each with the reason the
// rule exists and the section of docs/doctor.md that explains it.
//
// Every check reads the machine through Env (proc, sys and etc roots, the
// clock, a dialer, a probe that connects as another uid, the unit scorer),
// never through fixed paths, so that tests can point it at real processes
// they started and at trees they built.
package doctor

import (
	"context"
	"strings"
)

// Status is a check's verdict.
type Status string

const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
)

func (s Status) rank() int {
	switch s {
	case Fail:
		return 2
	case Warn:
		return 1
	}
	return 0
}

// worse returns the more serious of two verdicts.
func worse(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Result is one row. Its JSON names are an interface for monitoring and
// must not change.
type Result struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Expected string `json:"expected"`
	Measured string `json:"measured"`
	Status   Status `json:"status"`
	Fix      string `json:"fix"` // "" when the check passes
	Source   string `json:"source"`
}

// Summary counts the rows by verdict.
type Summary struct {
	Pass int `json:"pass"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
}

// Report is what `clamgate doctor --json` prints.
type Report struct {
	Checks  []Result `json:"checks"`
	Summary Summary  `json:"summary"`
	// Offline is true under --root: the process checks were not run,
	// because a tree has no processes.
	Offline bool `json:"-"`
}

// ExitCode is 0 when every check passes, 1 with a warning, 2 with a failure.
func (r *Report) ExitCode() int {
	switch {
	case r.Summary.Fail > 0:
		return 2
	case r.Summary.Warn > 0:
		return 1
	}
	return 0
}

// check is one row's definition; offline ones only read files under Root.
type check struct {
	id, title, expected, source string
	offline                     bool
	run                         func(ctx context.Context, h *host) verdict
}

// verdict is what a check measured; the row's fixed texts come from check.
type verdict struct {
	status   Status
	measured string
	fix      string
}

func pass(measured string) verdict { return verdict{status: Pass, measured: measured} }

// fold judges each item and makes one row of them, so that a row's id
// stays stable however many items a host has: the worst status, every
// measurement.
func fold[T any](items []T, fix string, judge func(T) (Status, string)) verdict {
	v := verdict{status: Pass, fix: fix}
	var parts []string
	for _, it := range items {
		st, m := judge(it)
		v.status = worse(v.status, st)
		parts = append(parts, m)
	}
	v.measured = joinSemi(parts)
	return v
}

// Run performs every check that applies to env and returns the report.
func Run(ctx context.Context, env *Env) *Report {
	h := newHost(env)
	r := &Report{Checks: []Result{}, Offline: env.Offline}
	quick, edge := h.quickStart(), isEdge(env)
	for _, c := range checks() {
		if env.Offline && !c.offline {
			continue
		}
		if env.Select != nil && !env.Select(c.id) {
			continue
		}
		var v verdict
		if edge && engineRow(c.id) {
			v = pass("edge: the engine is the pool's, none on this host (edge-pool, edge-no-clamd)")
		} else {
			v = c.run(ctx, h)
		}
		if edge && (c.id == "database" || c.id == "freshclam") {
			v = edgeDatabase(v)
		}
		if quick && deploymentRow(c.id) {
			v = notDeployed(v)
		}
		r.add(c, v)
	}
	return r
}

func (r *Report) add(c check, v verdict) {
	res := Result{ID: c.id, Title: c.title, Expected: c.expected, Measured: oneLine(v.measured), Status: v.status, Source: c.source}
	if v.status != Pass {
		res.Fix = oneLine(v.fix)
	}
	switch v.status {
	case Pass:
		r.Summary.Pass++
	case Warn:
		r.Summary.Warn++
	default:
		r.Summary.Fail++
	}
	r.Checks = append(r.Checks, res)
}

// oneLine keeps the table aligned whatever a measurement contains.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// checks lists the rows: the gateway's own engine first, then the order
// of the checklist, then the traps, then what the gateway adds.
func checks() []check {
	return []check{
		gatewayEngineCheck(),
		listenersCheck(),
		tlsCheck(),
		edgePoolCheck(),
		edgeNoClamdCheck(),
		clamdUIDCheck(),
		clamdCapEffCheck(),
		clamdCapBndCheck(),
		clamdNoNewPrivsCheck(),
		clamdSeccompCheck(),
		clamdNetNSCheck(),
		clamdLimitsCheck(),
		configCheck(),
		socketModeCheck(),
		socketRefusedCheck(),
		databaseCheck(),
		freshclamCheck(),
		memoryCapCheck(),
		singleClamdCheck(),
		unitsMaskedCheck(),
		unitsWantsCheck(),
		amavisScannerCheck(),
		amavisGroupsCheck(),
		exposureCheck(),
		imageDigestCheck(),
		engineIDsCheck(),
	}
}
