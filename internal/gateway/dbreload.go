package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
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
	// turns, when set, makes the pods of a pool take turns for reloads
	// that hold scans ([database] stagger); nil: no turns.
	turns *turns
	// unready is why /readyz is false: set while a reload holds scans.
	unready atomic.Pointer[string]
}

// notReady is why the reload makes the gateway not ready; nil when none runs.
func (r *dbReload) notReady() error {
	if why := r.unready.Load(); why != nil {
		return errors.New(*why)
	}
	return nil
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
//
// With turns, a reload that holds scans waits for this pod's turn first;
// the reload's timeout starts once it has it.
func (r *dbReload) reload(ctx context.Context) (reloaded, error) {
	res := reloaded{mode: r.current()}
	if r.engine != nil {
		res.mode, res.restarted = r.engine.Redecide()
	}
	if res.mode.Frugal || res.restarted {
		defer r.turns.take(ctx)()
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(r.timeout, 10*time.Minute))
	defer cancel()
	if res.mode.Frugal || res.restarted {
		defer r.leaveService(ctx, res)()
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

// leaveService makes /readyz false while scans are held, so that the
// Service sends new clients to other pods: with turns, for their unready
// time before the hold (the probe must see it first) and after it (the
// Service must add the pod back before the next pod leaves).
func (r *dbReload) leaveService(ctx context.Context, res reloaded) (back func()) {
	why := "reloading the database (" + res.mode.Name() + "): scans are held until clamd answers"
	if res.restarted {
		why = "restarting clamd into " + res.mode.Name() + " reloads: scans are held until it answers"
	}
	r.unready.Store(&why)
	r.log.Info("reload: not ready while scans are held", "mode", res.mode.Name(), "wait", r.turns.unreadyFor())
	sleep(ctx, r.turns.unreadyFor())
	return func() {
		r.unready.Store(nil)
		r.log.Info("reload: ready again")
		sleep(ctx, r.turns.unreadyFor())
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
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
