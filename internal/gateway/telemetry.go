package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/engine"
	"clamgate/internal/metrics"
	"clamgate/internal/status"
)

// telemetry is what the gateway tells the outside about itself: metrics,
// health and readiness over HTTP, and systemd's READY/WATCHDOG.
type telemetry struct {
	metrics  *metrics.Metrics
	pool     *clamd.Pool
	answered atomic.Bool    // clamd has answered a PING since start
	engine   *engine.Engine // the managed clamd, or nil
	http     *status.Server
	log      *slog.Logger
	// held is how long the dispatcher has held scans (a frugal reload, or
	// the managed clamd loading); nil until the dispatcher exists.
	held func() time.Duration
	// testDatabase: the managed clamd runs the built-in test database,
	// which must never make the gateway Ready for real traffic (a pod
	// behind a Service, a health-checked backend).
	testDatabase bool
	// remote: every backend is another gateway (tls:), a central one or
	// an edge's pool, which a restart of this gateway cannot bring back.
	remote bool
	reload *dbReload // the database's reloads, which make the gateway not ready while they hold scans
}

func newTelemetry(cfg *config.Config, pool *clamd.Pool, eng *engine.Engine, log *slog.Logger) *telemetry {
	t := &telemetry{metrics: metrics.New(), pool: pool, engine: eng, log: log,
		testDatabase: cfg.Engine != nil && cfg.Engine.Database == engine.TestDatabase, remote: remoteOnly(cfg)}
	t.metrics.SetBackends(t.backends)
	switch {
	case eng != nil:
		t.metrics.SetEngineMemory(func() (int64, int64, bool) { return metrics.EngineMemory(eng.PID(), "") })
		t.metrics.SetEngineCrashes(func() (uint64, bool) {
			h := eng.Health()
			return h.Crashes, h.CrashLooping()
		})
	case cfg.EngineCgroup != "":
		t.metrics.SetEngineMemory(func() (int64, int64, bool) { return metrics.EngineMemory(0, cfg.EngineCgroup) })
	}
	if cfg.HTTP != "" {
		t.http = &status.Server{Addr: cfg.HTTP, AllowNonLoopback: cfg.HTTPAllowNonLoopback,
			MaxConnections: cfg.HTTPMaxConnections, Metrics: t.metrics.Handler(), Ready: t.ready, Log: log}
	}
	return t
}

// follow reports the database the lifecycle keeps loaded.
func (t *telemetry) follow(life *lifecycle) {
	t.reload = life.reloader
	t.metrics.SetDatabase(func() (int, int, time.Time, bool) {
		s := life.loaded.Load()
		if s == nil {
			return 0, 0, time.Time{}, false
		}
		return s.Version, s.Signatures, s.BuildTime, true
	})
	t.metrics.SetReloadMode(func() (string, string) {
		m := life.reloader.current()
		return m.Name(), m.Basis
	})
}

func (t *telemetry) backends() []metrics.BackendState {
	var out []metrics.BackendState
	for _, s := range t.pool.States() {
		role := "primary"
		if s.Fallback {
			role = "fallback"
		}
		out = append(out, metrics.BackendState{Address: s.Address, Role: role, Up: s.Up})
	}
	return out
}

// errTestDatabase is /readyz's answer while the built-in test database is
// loaded: doctor tells it apart from an engine that does not answer.
var errTestDatabase = errors.New("clamd runs clamgate's built-in test database (EICAR and ClamAV's test files only): not ready for real traffic; give [engine] database a real one")

// ready is /readyz: healthy, and neither holding scans for a reload nor
// running the test database. A load balancer or Kubernetes sends work
// elsewhere meanwhile; systemd's watchdog follows healthy only, since a
// long reload or the quick start's test database is no reason to restart.
func (t *telemetry) ready() error {
	if err := t.healthy(); err != nil {
		return err
	}
	if t.reload != nil { // a staggered reload's turn, before and after the hold
		if err := t.reload.notReady(); err != nil {
			return err
		}
	}
	if t.held != nil {
		if d := t.held(); d > 0 {
			return fmt.Errorf("scans held for %s: clamd is loading or reloading its database (frugal reload)", d.Round(time.Millisecond))
		}
	}
	if t.testDatabase {
		return errTestDatabase
	}
	return nil
}

// healthy: a backend answers, and clamd has loaded its database (it answers
// PING only once it has). While it does not, a managed clamd that keeps
// exiting is named as the reason, with its last error line.
func (t *telemetry) healthy() error {
	err := t.pool.Ready()
	if !t.answered.Load() {
		err = errors.New("clamd has not answered yet (loading its database?)")
	}
	if err != nil && t.engine != nil {
		if loop := t.engine.Health().Err(); loop != nil {
			return loop
		}
	}
	return err
}

// alive is what systemd's watchdog is fed on: clamd answering (healthy,
// not ready: a long reload or the test database is no reason to be
// killed), except with remote backends only. An edge whose pool is down keeps serving (its
// clients get ERROR, the milter tempfails) and is ready again as soon as
// the pool answers; withholding the pings would only have systemd kill
// and restart it every WatchdogSec for as long as the pool is away.
func (t *telemetry) alive() error {
	if t.remote {
		return nil
	}
	return t.healthy()
}

// remoteOnly: the configuration's backends, fallback included, are all tls:.
func remoteOnly(cfg *config.Config) bool {
	all := append(slices.Clone(cfg.Backends), cfg.Fallback)
	return len(cfg.Backends) > 0 && !slices.ContainsFunc(all, func(b string) bool { return b != "" && !strings.HasPrefix(b, "tls:") })
}

// start binds the HTTP listener, so that a bad address stops the gateway
// at once, and serves it in the background.
func (t *telemetry) start(ctx context.Context, bg interface{ Go(func()) }, inherited map[string]net.Listener) error {
	for addr, ln := range inherited {
		if t.http == nil || addr != t.http.Addr {
			t.log.Warn("systemd passed a socket no listener uses: closing it", "address", addr)
			ln.Close()
		}
	}
	if t.http == nil {
		return nil
	}
	ln, ok := inherited[t.http.Addr]
	if !ok {
		var err error
		if ln, err = t.http.Listen(ctx); err != nil {
			return err
		}
	}
	t.log.Info("serving metrics and health", "address", t.http.Addr)
	bg.Go(func() { _ = t.http.Serve(ctx, ln) })
	return nil
}

// serving is called once clamd has answered: systemd may start what
// depends on the gateway.
func (t *telemetry) serving(ctx context.Context, bg interface{ Go(func()) }) {
	t.answered.Store(true)
	if status.NotifyReady(t.log) {
		bg.Go(func() { status.Watchdog(ctx, t.alive, t.log) })
	}
}
