package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/kubelease"
)

// turns is this pod's place among a pool's for the reloads that hold
// scans ([database] stagger): with one pod at a time out of service, a
// pool of N keeps N-1 pods' capacity through a database update.
type turns struct {
	lease interface {
		Acquire(ctx context.Context) (release func(), err error)
		String() string
	}
	wait    time.Duration // longest wait for the turn
	unready time.Duration // /readyz false this long before and after the hold
	log     *slog.Logger
}

// failOpenPause bounds the random pause before a reload that runs without
// its turn, so that pods whose waits ended together do not stall together.
const failOpenPause = 15 * time.Second

// newTurns is [database] stagger; nil when it is off.
func newTurns(cfg config.Database, log *slog.Logger) (*turns, error) {
	if cfg.Stagger != "kubernetes" {
		return nil, nil
	}
	lease, err := kubelease.New(kubelease.Config{Name: cfg.StaggerLease, Credentials: cfg.StaggerCredentials, Log: log})
	if err != nil {
		return nil, fmt.Errorf("[database] stagger: %w", err)
	}
	log.Info("reloads that hold scans take turns through a Kubernetes lease", "lease", lease, "holder", lease.Holder(),
		"wait", cfg.StaggerWait, "unready", cfg.StaggerUnready)
	return &turns{lease: lease, wait: cfg.StaggerWait, unready: cfg.StaggerUnready, log: log}, nil
}

func (t *turns) unreadyFor() time.Duration {
	if t == nil {
		return 0
	}
	return t.unready
}

// take waits for this pod's turn, at most t.wait. Past it, or while the
// API does not answer, the reload runs anyway (fail open) after a random
// pause: a database that never updates is a silent loss of protection on
// every scan, while a frugal reload out of turn is a stall of seconds that
// scans wait out in the gateway. release gives the turn back.
func (t *turns) take(ctx context.Context) (release func()) {
	if t == nil {
		return func() {}
	}
	start := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, t.wait)
	defer cancel()
	release, err := t.lease.Acquire(waitCtx)
	if err == nil {
		t.log.Info("reload: this pod's turn", "lease", t.lease, "waited", time.Since(start).Round(time.Millisecond))
		return release
	}
	if ctx.Err() != nil {
		return func() {}
	}
	pause := rand.N(failOpenPause)
	t.log.Warn("reload: no turn within stagger_wait; reloading anyway after a random pause", "lease", t.lease,
		"waited", time.Since(start).Round(time.Millisecond), "pause", pause.Round(time.Millisecond), "err", err)
	sleep(ctx, pause)
	return func() {}
}
