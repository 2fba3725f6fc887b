package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestConfigReloads: a refused reload counts and clears last_reload_successful
// but keeps the time and the weights of the configuration still running.
func TestConfigReloads(t *testing.T) {
	m := New()
	start := time.Unix(1000, 0)
	m.ConfigLoaded(start, map[string]int{"mail": 2, "proxy": 0}, false)
	m.ConfigRefused()
	m.ConfigLoaded(start.Add(time.Minute), map[string]int{"mail": 5}, true)
	m.ConfigRefused()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"reloads ok", testutil.ToFloat64(m.config.reloads.WithLabelValues(ReloadOK)), 1},
		{"reloads refused", testutil.ToFloat64(m.config.reloads.WithLabelValues(ReloadRefused)), 2},
		{"last success", testutil.ToFloat64(m.config.lastSuccess), 1060},
		{"last successful", testutil.ToFloat64(m.config.lastOK), 0},
		{"mail weight", testutil.ToFloat64(m.config.weight.WithLabelValues("mail")), 5},
		{"weights", float64(testutil.CollectAndCount(m.config.weight)), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
