package gateway

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/engine"
)

// dbReload makes clamd load a changed database. The gateway orchestrates
// it beside the database lifecycle, and hands it what it needs: the
// dispatcher to hold, every backend client, and the managed engine if any
// (issue 30: it no longer digs the backends out of the dispatcher).
//
// In frugal mode clamd runs with ConcurrentDatabaseReload no, so a reload
// keeps one database in memory instead of two but stops clamd from
// scanning until it is done; the dispatcher is held meanwhile, so that
// clients wait in the gateway (up to their max_wait) rather than time out
// inside clamd.
type dbReload struct {
	jobs     holder
	backends []*clamd.Client // every clamd that loads the database
	// mode is [database] reload: "auto", "frugal" or "concurrent".
	mode string
	// engine is the managed clamd, nil for an external one: with mode
	// "auto" it chooses per reload (see Engine.Redecide).
	engine *engine.Engine
	log    *slog.Logger
	// drain bounds the wait for running scans before RELOAD; longer scans
	// are left for clamd to finish first.
	drain time.Duration
	// timeout bounds the whole reload.
	timeout time.Duration
}

// holder is the dispatcher as a reload sees it.
type holder interface {
	Hold() (release func())
	WaitIdle(ctx context.Context) error
}

// reloaded is what a reload did.
type reloaded struct {
	took      time.Duration
	mode      engine.ReloadMode
	restarted bool // the managed clamd was restarted into mode instead of RELOAD
	// activated is closed once the managed clamd, reloading concurrently,
	// scans with the new database (nil: no such sign); stopWaiting disarms it.
	activated   <-chan struct{}
	stopWaiting func()
}

// current is the mode the next reload would run in, as last decided.
func (r *dbReload) current() engine.ReloadMode {
	switch {
	case r.engine != nil:
		return r.engine.ReloadMode()
	case r.mode == "auto":
		return engine.ExternalMode()
	}
	return engine.ConfiguredMode(r.mode)
}

// reload makes clamd load the database: RELOAD (and, in frugal mode, wait
// until clamd answers again), or a restart of the managed clamd when auto
// has changed its mode.
func (r *dbReload) reload(ctx context.Context) (reloaded, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(r.timeout, 10*time.Minute))
	defer cancel()
	res := reloaded{mode: r.current()}
	if r.engine != nil {
		res.mode, res.restarted = r.engine.Redecide()
	}
	if res.mode.Frugal || res.restarted {
		release := r.hold(ctx, start, res.restarted)
		defer release()
	}
	var err error
	if res.restarted {
		err = r.restart(ctx)
	} else {
		if r.engine != nil && !res.mode.Frugal {
			res.activated, res.stopWaiting = r.engine.ExpectActivation()
		}
		err = r.reloadAll(ctx, res.mode.Frugal)
	}
	if err != nil && res.stopWaiting != nil {
		res.stopWaiting()
		res.activated = nil
	}
	res.took = time.Since(start)
	return res, err
}

// hold stops new scans and waits for the running ones: boundedly before
// RELOAD, which clamd performs after them; for a restart, which would
// fail them, until they end (each is bounded by its job timeout) or the
// whole reload's timeout does.
func (r *dbReload) hold(ctx context.Context, start time.Time, restart bool) func() {
	release := r.jobs.Hold()
	drainCtx, stop := ctx, context.CancelFunc(func() {})
	if !restart {
		drainCtx, stop = context.WithTimeout(ctx, cmp.Or(r.drain, 30*time.Second))
	}
	defer stop()
	if err := r.jobs.WaitIdle(drainCtx); err != nil {
		if restart {
			r.log.Warn("reload: scans still running at the reload's timeout; clamd is not restarted", "after", time.Since(start).Round(time.Millisecond))
		} else {
			r.log.Warn("reload: scans still running, clamd will finish them first", "after", time.Since(start).Round(time.Millisecond))
		}
	}
	return release
}

// restart is a reload for the managed clamd: the new one loads the
// current database, with one engine in memory, before it answers.
func (r *dbReload) restart(ctx context.Context) error {
	if err := r.engine.Restart(ctx); err != nil {
		return fmt.Errorf("restarting clamd: %w", err)
	}
	if err := r.engine.WaitReady(ctx); err != nil {
		return fmt.Errorf("waiting for the restarted clamd: %w", err)
	}
	return nil
}

// reloadAll sends RELOAD to every backend: they all load the same
// database.
func (r *dbReload) reloadAll(ctx context.Context, frugal bool) error {
	for _, b := range r.backends {
		if err := reloadOne(ctx, b, frugal); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
	}
	return nil
}

func reloadOne(ctx context.Context, b *clamd.Client, frugal bool) error {
	reply, err := b.Command(ctx, "RELOAD")
	if err != nil {
		return fmt.Errorf("RELOAD: %w", err)
	}
	if reply != "RELOADING" {
		return fmt.Errorf("RELOAD: clamd answered %q", reply)
	}
	if frugal {
		// clamd answers nothing until a non-concurrent reload is over: the
		// first PONG after RELOAD means the new database is in.
		if reply, err := b.Command(ctx, "PING"); err != nil || reply != "PONG" {
			return fmt.Errorf("waiting for clamd after RELOAD: %q %v", reply, err)
		}
	}
	return nil
}
