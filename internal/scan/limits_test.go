package scan

import (
	"strings"
	"testing"
)

func TestOnLimits(t *testing.T) {
	const limit = "stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND"
	tests := []struct {
		name, reply, policy string
		want                Result
	}{
		{"block keeps the FOUND", limit, LimitsBlock,
			Result{Reply: limit, Verdict: Infected, Threat: "Heuristics.Limits.Exceeded.MaxRecursion"}},
		{"unset is block", limit, "",
			Result{Reply: limit, Verdict: Infected, Threat: "Heuristics.Limits.Exceeded.MaxRecursion"}},
		{"error", limit, LimitsError,
			Result{Reply: "stream: Heuristics.Limits.Exceeded.MaxRecursion ERROR", Verdict: Failed}},
		{"pass", limit, LimitsPass, Result{Reply: "stream: OK", Verdict: Clean}},
		{"a signature is never passed", "stream: Eicar-Test-Signature FOUND", LimitsPass,
			Result{Reply: "stream: Eicar-Test-Signature FOUND", Verdict: Infected, Threat: "Eicar-Test-Signature"}},
		{"a signature beside a limit stays infected",
			"fd[5]: Heuristics.Limits.Exceeded.MaxFiles FOUND\nfd[5]: Eicar-Test-Signature FOUND", LimitsPass,
			Result{Reply: "fd[5]: Heuristics.Limits.Exceeded.MaxFiles FOUND\nfd[5]: Eicar-Test-Signature FOUND",
				Verdict: Infected, Threat: "Heuristics.Limits.Exceeded.MaxFiles"}},
		{"every line of ALLMATCHSCAN", "fd[5]: Heuristics.Limits.Exceeded.MaxFiles FOUND\nfd[5]: Heuristics.Limits.Exceeded.MaxScanSize FOUND",
			LimitsError, Result{Reply: "fd[5]: Heuristics.Limits.Exceeded.MaxFiles ERROR\nfd[5]: Heuristics.Limits.Exceeded.MaxScanSize ERROR", Verdict: Failed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := onLimits(repliesOf(tt.reply), tt.policy); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzOnLimits: whatever clamd answers, on_limits never turns a reply with
// a real signature into anything but infected, and only "pass" ever makes
// a reply clean that was not.
func FuzzOnLimits(f *testing.F) {
	for _, s := range []string{"stream: Heuristics.Limits.Exceeded.MaxFiles FOUND", "stream: OK", "x: Eicar FOUND",
		"fd[3]: Heuristics.Limits.Exceeded.MaxScanSize FOUND\nfd[3]: Eicar FOUND", "stream: Heuristics.Limits.Exceeded.X ERROR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		in := repliesOf(reply)
		for _, policy := range []string{LimitsBlock, LimitsError, LimitsPass} {
			out := onLimits(in, policy)
			if in.Verdict == Infected && !IsLimits(in.Threat) && out != in {
				t.Fatalf("%s changed a real threat: %+v -> %+v", policy, in, out)
			}
			if out.Verdict == Clean && in.Verdict != Clean && policy != LimitsPass {
				t.Fatalf("%s made %q clean", policy, reply)
			}
			if out.Verdict == Infected && in.Verdict != Infected {
				t.Fatalf("%s made %q infected", policy, reply)
			}
		}
	})
}

// repliesOf reads each line of reply with ParseVerdict, as the dispatcher
// reads one, and keeps the first threat: onLimits must also hold for a
// reply of several lines, which ALLMATCHSCAN could give.
func repliesOf(reply string) Result {
	res := Result{Reply: reply}
	for _, line := range strings.Split(reply, "\n") {
		object := FDObject(line)
		if object == "" {
			object = StreamObject
		}
		r, err := ParseVerdict(object, line)
		switch {
		case err != nil || r.Verdict == Failed:
			return Result{Reply: reply}
		case r.Verdict == Infected && res.Verdict != Infected:
			res.Verdict, res.Threat = Infected, r.Threat
		case r.Verdict == Clean && res.Verdict == Failed:
			res.Verdict = Clean
		}
	}
	return res
}
