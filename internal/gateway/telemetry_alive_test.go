package gateway

import (
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
)

// TestWatchdogAliveWithRemoteBackends: with only tls: backends (an edge
// and its pool) the watchdog is fed while the pool is down, since a
// restart cannot bring it back; with a local clamd, readiness decides.
func TestWatchdogAliveWithRemoteBackends(t *testing.T) {
	for _, tc := range []struct {
		backends []string
		fallback string
		remote   bool
	}{
		{[]string{"tls:127.0.0.1:1", "tls:127.0.0.1:2"}, "", true},
		{[]string{"tls:127.0.0.1:1"}, "unix:/nonexistent/clamd.sock", false},
		{[]string{"unix:/nonexistent/clamd.sock"}, "", false},
		{[]string{"tcp:127.0.0.1:1"}, "", false},
	} {
		cfg := &config.Config{Backends: tc.backends, Fallback: tc.fallback}
		pool, err := clamd.NewPool([]string{"unix:/nonexistent/clamd.sock"}, "", time.Second, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		tel := newTelemetry(cfg, pool, nil, nil)
		if tel.ready() == nil {
			t.Fatal("ready with no backend answering")
		}
		if got := tel.alive() == nil; got != tc.remote {
			t.Errorf("%v fallback %q: watchdog fed while no backend answers: %v, want %v", tc.backends, tc.fallback, got, tc.remote)
		}
	}
}
