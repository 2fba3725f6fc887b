package scan

import "strings"

// LimitsPrefix starts the name clamd gives, with AlertExceedsMax yes, to an
// object it stopped scanning at one of its limits (MaxRecursion, MaxFiles,
// MaxScanSize, MaxFileSize...): the object was not scanned whole.
const LimitsPrefix = "Heuristics.Limits.Exceeded"

// What a client's on_limits makes of such an object.
const (
	LimitsBlock = "block" // the FOUND as clamd gave it (the default)
	LimitsError = "error" // a scan failure
	LimitsPass  = "pass"  // clean, on the administrator's word
)

// IsLimits reports a threat name that is a scan limit, not a signature.
func IsLimits(threat string) bool { return strings.HasPrefix(threat, LimitsPrefix) }

// onLimits applies a client's on_limits to a parsed reply. Only a reply
// whose every FOUND is a limit changes: a real signature found alongside
// (ALLMATCHSCAN) stays infected, whatever the policy. The reply text is
// rewritten line by line so that the clamd front, which relays it, says
// what the verdict says.
func onLimits(res Result, policy string) Result {
	if res.Verdict != Infected || !IsLimits(res.Threat) || policy == LimitsBlock || policy == "" {
		return res
	}
	lines := strings.Split(res.Reply, "\n")
	for i, line := range lines {
		name, ok := strings.CutSuffix(line, " FOUND")
		if !ok {
			continue
		}
		obj, threat, _ := cutLast(name, ": ")
		if !IsLimits(threat) {
			return res
		}
		if policy == LimitsPass {
			lines[i] = obj + ": OK"
		} else {
			lines[i] = obj + ": " + threat + " ERROR"
		}
	}
	out := Result{Reply: strings.Join(lines, "\n"), Verdict: Failed}
	if policy == LimitsPass {
		out.Verdict = Clean
	}
	return out
}

// limits applies the client's on_limits to an object clamd stopped
// scanning at a limit; the policy is looked up only then, off the hot path.
func (d *Dispatcher) limits(job Job, res Result) Result {
	if res.Verdict != Infected || !IsLimits(res.Threat) {
		return res
	}
	policy := d.sched.lockedLimits(job.Client).OnLimits
	if policy == LimitsPass {
		d.log.Warn("passed as clean without a whole scan (on_limits = pass)", "client", job.Client,
			"protocol", job.Protocol, "object", job.Object, "limit", res.Threat)
	}
	return onLimits(res, policy)
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return "", s, false
}
