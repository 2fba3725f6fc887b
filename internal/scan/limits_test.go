package scan

import "testing"

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
			if got := onLimits(ParseReply(tt.reply), tt.policy); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
