package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

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
	ctx, cancel := context.WithTimeout(ctx, or(r.Timeout, 10*time.Minute))
	defer cancel()
	backend := r.Dispatcher.Backend()
	if r.Frugal {
		release := r.Dispatcher.Hold()
		defer release()
		drainCtx, stop := context.WithTimeout(ctx, or(r.Drain, 30*time.Second))
		if err := r.Dispatcher.WaitIdle(drainCtx); err != nil {
			r.Log.Warn("reload: scans still running, clamd will finish them first", "after", time.Since(start).Round(time.Millisecond))
		}
		stop()
	}
	reply, err := backend.Command(ctx, "RELOAD")
	if err != nil {
		return time.Since(start), fmt.Errorf("RELOAD: %w", err)
	}
	if reply != "RELOADING" {
		return time.Since(start), fmt.Errorf("RELOAD: clamd answered %q", reply)
	}
	if r.Frugal {
		// clamd answers nothing until a non-concurrent reload is over: the
		// first PONG after RELOAD means the new database is in.
		if reply, err := backend.Command(ctx, "PING"); err != nil || reply != "PONG" {
			return time.Since(start), fmt.Errorf("waiting for clamd after RELOAD: %q %v", reply, err)
		}
	}
	return time.Since(start), nil
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
