package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
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
	reload   *dbReload // the database's reloads, which make the gateway not ready while they hold scans
}

func newTelemetry(cfg *config.Config, pool *clamd.Pool, eng *engine.Engine, log *slog.Logger) *telemetry {
	t := &telemetry{metrics: metrics.New(), pool: pool, engine: eng, log: log}
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

// ready: a backend answers, and clamd has loaded its database (it answers
// PING only once it has). While it does not, a managed clamd that keeps
// exiting is named as the reason, with its last error line.
//
// A reload that holds scans makes /readyz false too (a Service then sends
// clients to other pods), but not systemd's watchdog: a frugal reload may
// outlast WatchdogSec, and restarting the gateway would not end it.
func (t *telemetry) ready() error {
	if t.reload != nil {
		if err := t.reload.notReady(); err != nil {
			return err
		}
	}
	return t.engineReady()
}

func (t *telemetry) engineReady() error {
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
		bg.Go(func() { status.Watchdog(ctx, t.engineReady, t.log) })
	}
}
