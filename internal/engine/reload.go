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
	Frugal     bool
	Log        *slog.Logger
	// Drain bounds the wait for running scans before RELOAD; longer scans
	// are left for clamd to finish first.
	Drain time.Duration
	// Timeout bounds the whole reload.
	Timeout time.Duration
}

// Reload sends RELOAD and, in frugal mode, returns once clamd answers again.
func (r *Reloader) Reload(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(r.Timeout, 10*time.Minute))
	defer cancel()
	backend := r.Dispatcher.Backend()
	if r.Frugal {
		release := r.Dispatcher.Hold()
		defer release()
		drainCtx, stop := context.WithTimeout(ctx, cmp.Or(r.Drain, 30*time.Second))
		if err := r.Dispatcher.WaitIdle(drainCtx); err != nil {
			r.Log.Warn("reload: scans still running, clamd will finish them first", "after", time.Since(start).Round(time.Millisecond))
		}
		stop()
	}
	for _, b := range targets(backend) {
		if err := r.reloadOne(ctx, b); err != nil {
			return time.Since(start), err
		}
	}
	return time.Since(start), nil
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

func (r *Reloader) reloadOne(ctx context.Context, b scan.Backend) error {
	reply, err := b.Command(ctx, "RELOAD")
	if err != nil {
		return fmt.Errorf("RELOAD: %w", err)
	}
	if reply != "RELOADING" {
		return fmt.Errorf("RELOAD: clamd answered %q", reply)
	}
	if r.Frugal {
		// clamd answers nothing until a non-concurrent reload is over: the
		// first PONG after RELOAD means the new database is in.
		if reply, err := b.Command(ctx, "PING"); err != nil || reply != "PONG" {
			return fmt.Errorf("waiting for clamd after RELOAD: %q %v", reply, err)
		}
	}
	return nil
}
