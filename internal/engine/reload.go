package engine

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/scan"
)

// Reloader makes clamd load a changed database. In frugal mode clamd runs
// with ConcurrentDatabaseReload no, so a reload keeps one database in
// memory instead of two but stops clamd from scanning until it is done;
// the reloader holds the dispatcher meanwhile, so that clients wait in the
// gateway (up to their max_wait) rather than time out inside clamd.
type Reloader struct {
	Dispatcher *scan.Dispatcher
	// Mode is [database] reload: "auto", "frugal" or "concurrent".
	Mode string
	// Engine is the managed clamd, nil for an external one: with Mode
	// "auto" it chooses per reload (see Engine.Redecide).
	Engine *Engine
	Log    *slog.Logger
	// Drain bounds the wait for running scans before RELOAD; longer scans
	// are left for clamd to finish first.
	Drain time.Duration
	// Timeout bounds the whole reload.
	Timeout time.Duration
}

// Reloaded is what a reload did.
type Reloaded struct {
	Took      time.Duration
	Mode      ReloadMode
	Restarted bool // the managed clamd was restarted into Mode instead of RELOAD
}

// Current is the mode the next reload would run in, as last decided.
func (r *Reloader) Current() ReloadMode {
	switch {
	case r.Engine != nil:
		return r.Engine.ReloadMode()
	case r.Mode == "auto":
		return ExternalMode()
	}
	return ConfiguredMode(r.Mode)
}

// Reload makes clamd load the database: RELOAD (and, in frugal mode, wait
// until clamd answers again), or a restart of the managed clamd when auto
// has changed its mode.
func (r *Reloader) Reload(ctx context.Context) (Reloaded, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(r.Timeout, 10*time.Minute))
	defer cancel()
	res := Reloaded{Mode: r.Current()}
	if r.Engine != nil {
		res.Mode, res.Restarted = r.Engine.Redecide()
	}
	if res.Mode.Frugal || res.Restarted {
		release := r.hold(ctx, start, res.Restarted)
		defer release()
	}
	var err error
	if res.Restarted {
		err = r.restart(ctx)
	} else {
		err = r.reloadAll(ctx, res.Mode.Frugal)
	}
	res.Took = time.Since(start)
	return res, err
}

// hold stops new scans and waits for the running ones: boundedly before
// RELOAD, which clamd performs after them; for a restart, which would
// fail them, until they end (each is bounded by its job timeout) or the
// whole reload's timeout does.
func (r *Reloader) hold(ctx context.Context, start time.Time, restart bool) func() {
	release := r.Dispatcher.Hold()
	drainCtx, stop := ctx, context.CancelFunc(func() {})
	if !restart {
		drainCtx, stop = context.WithTimeout(ctx, cmp.Or(r.Drain, 30*time.Second))
	}
	defer stop()
	if err := r.Dispatcher.WaitIdle(drainCtx); err != nil {
		if restart {
			r.Log.Warn("reload: scans still running at the reload's timeout; clamd is not restarted", "after", time.Since(start).Round(time.Millisecond))
		} else {
			r.Log.Warn("reload: scans still running, clamd will finish them first", "after", time.Since(start).Round(time.Millisecond))
		}
	}
	return release
}

// restart is a reload for the managed clamd: the new one loads the
// current database, with one engine in memory, before it answers.
func (r *Reloader) restart(ctx context.Context) error {
	if err := r.Engine.Restart(ctx); err != nil {
		return fmt.Errorf("restarting clamd: %w", err)
	}
	if err := r.Engine.WaitReady(ctx); err != nil {
		return fmt.Errorf("waiting for the restarted clamd: %w", err)
	}
	return nil
}

func (r *Reloader) reloadAll(ctx context.Context, frugal bool) error {
	for _, b := range targets(r.Dispatcher.Backend()) {
		if err := reloadOne(ctx, b, frugal); err != nil {
			return err
		}
	}
	return nil
}

// targets are the clamd instances a reload must reach: every backend of
// a pool, since they all load the same database.
func targets(b scan.Backend) []scan.Backend {
	pool, ok := b.(interface{ Clients() []*clamd.Client })
	if !ok {
		return []scan.Backend{b}
	}
	var out []scan.Backend
	for _, c := range pool.Clients() {
		out = append(out, c)
	}
	return out
}

func reloadOne(ctx context.Context, b scan.Backend, frugal bool) error {
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
