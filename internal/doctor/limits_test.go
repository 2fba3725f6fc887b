package doctor_test

import (
	"fmt"
	"testing"

	"clamgate/internal/config"
	"clamgate/internal/doctor"
	"clamgate/internal/testenv"
)

// TestClamdLimits asks real clamds about an object past MaxRecursion: the
// one without AlertExceedsMax (clamd's default) fails the check, the one
// with it passes, and one unpacking deeper than the probe cannot tell.
func TestClamdLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		extra  []string
		status doctor.Status
		want   string
	}{
		{"default", nil, doctor.Fail, "stream: OK"},
		{"AlertExceedsMax", []string{"AlertExceedsMax yes"}, doctor.Pass, "Heuristics.Limits.Exceeded.MaxRecursion FOUND"},
		{"MaxRecursion 100", []string{"AlertExceedsMax yes", "MaxRecursion 100"}, doctor.Warn, testenv.EicarThreat + " FOUND"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: tc.extra})
			env := liveEnv()
			cfg, err := config.Parse("clamgate.toml", []byte(fmt.Sprintf(
				"[backend]\naddress = \"unix:%s\"\n[[listener]]\naddress = \"tcp:127.0.0.1:1\"\npolicy = \"p\"\n[policy.p]\n", c.Socket)))
			must(t, err)
			env.Config = cfg
			expect(t, runOne(t, env, "clamd-limits"), tc.status, tc.want)
		})
	}
}
