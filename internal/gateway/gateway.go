// Package gateway assembles the daemon: listeners and their policies, the
// protocol fronts, the dispatcher and the clamd backend (external, or a
// managed clamd), and shuts them down gracefully.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/clamdproto"
	"clamgate/internal/config"
	"clamgate/internal/engine"
	"clamgate/internal/hangup"
	"clamgate/internal/icap"
	"clamgate/internal/listen"
	"clamgate/internal/milter"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
	"clamgate/internal/status"
)

// Run serves until ctx is cancelled, then stops accepting, lets running
// requests finish for the configured grace period, and returns.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	eng, addrs, err := prepareEngine(cfg, log)
	if err != nil {
		return err
	}
	pool, err := clamd.NewPool(addrs, cfg.Fallback, cfg.BackendTimeout, cfg.HealthInterval, log)
	if err != nil {
		return err
	}
	if !pool.Unix() && pathScans(cfg) {
		log.Warn("path scans will fail: they reach clamd as descriptors (FILDES), which needs a unix socket backend", "backend", pool.Primary().String())
	}
	inherited := listen.Inherited()
	listeners, err := openListeners(cfg, inherited, log)
	if err != nil {
		return err
	}
	tel := newTelemetry(cfg, pool, eng, log)
	opts := cfg.DispatchOptions()
	opts.Observers = append(opts.Observers, tel.metrics)
	if cfg.Audit {
		opts.Observers = append(opts.Observers, scan.AuditLog{Log: log})
	}
	dispatcher := scan.NewDispatcher(pool, log, opts)
	tel.metrics.SetHeld(dispatcher.HeldFor)
	life := newLifecycle(cfg, eng, dispatcher, log)
	if life != nil {
		tel.follow(life)
	}
	fronts := newFronts(cfg, log, dispatcher, life)
	var bg sync.WaitGroup
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopEngine(); bg.Wait() }()
	if err := tel.start(ctx, &bg, inherited); err != nil {
		closeAll(listeners)
		return err
	}
	if eng != nil {
		bg.Go(func() { _ = eng.Run(engCtx) })
	}
	bg.Go(func() {
		if waitBackend(ctx, log, pool) {
			tel.serving(ctx, &bg)
		}
	})
	bg.Go(func() { pool.Run(ctx) })
	if life != nil {
		bg.Go(func() { life.run(ctx) })
	}
	serve(ctx, cfg, log, listeners, fronts)
	return nil
}

// prepareEngine writes the managed clamd's configuration, when there is
// one, and returns the backends' addresses.
func prepareEngine(cfg *config.Config, log *slog.Logger) (*engine.Engine, []string, error) {
	if cfg.Engine == nil {
		return nil, cfg.Backends, nil
	}
	eng := engine.New(*cfg.Engine, log)
	if err := eng.Prepare(); err != nil {
		return nil, nil, fmt.Errorf("managed clamd: %w", err)
	}
	announceDatabase(log, eng)
	return eng, []string{eng.Address()}, nil
}

// newLifecycle follows the database of a managed clamd, or the directory
// the configuration names for an external one; nil when there is none.
func newLifecycle(cfg *config.Config, eng *engine.Engine, d *scan.Dispatcher, log *slog.Logger) *lifecycle {
	dir := cfg.Database.Dir
	if dir == "" && eng != nil {
		var builtin bool
		if dir, builtin = eng.Database(); builtin {
			return nil
		}
	}
	if dir == "" {
		return nil
	}
	frugal := cfg.Database.Reload == "frugal"
	return &lifecycle{cfg: cfg.Database, dir: dir, log: log,
		reloader: &engine.Reloader{Dispatcher: d, Frugal: frugal, Log: log}}
}

func pathScans(cfg *config.Config) bool {
	for _, p := range cfg.Policies {
		if len(p.Roots) > 0 {
			return true
		}
	}
	return false
}

func announceDatabase(log *slog.Logger, eng *engine.Engine) {
	dir, builtin := eng.Database()
	if builtin {
		log.Warn("no signatures in " + engine.SystemDatabase + ": using clamgate's built-in TEST database (EICAR and ClamAV test files only); install and run freshclam for real protection")
		return
	}
	log.Info("managed clamd uses database", "dir", dir)
}

func waitBackend(ctx context.Context, log *slog.Logger, pool *clamd.Pool) bool {
	start := time.Now()
	if err := engine.WaitPing(ctx, pool); err != nil {
		return false
	}
	log.Info("clamd answers", "backend", pool.Primary().String(), "after", time.Since(start).Round(time.Millisecond))
	return true
}

func closeAll(listeners []boundListener) {
	for _, l := range listeners {
		l.Close()
	}
}

// front serves one client connection in its protocol; drain ends when the
// gateway stops accepting, ctx when running requests must be aborted.
type front interface {
	ServeConn(ctx, drain context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer)
}

func newFronts(cfg *config.Config, log *slog.Logger, d *scan.Dispatcher, life *lifecycle) map[string]front {
	cp := &clamdproto.Server{Dispatcher: d, Log: log, ReadTimeout: cfg.ReadTimeout}
	ic := &icap.Server{Dispatcher: d, Log: log, ReadTimeout: cfg.ReadTimeout, Settings: cfg.ICAP}
	if life != nil {
		cp.StatsExtra, ic.Tag = life.Stats, life.Tag
	}
	return map[string]front{
		config.ProtoClamd:  cp,
		config.ProtoMilter: &milter.Server{Dispatcher: d, Log: log, Config: cfg.Milter},
		config.ProtoICAP:   ic,
	}
}

type boundListener struct {
	net.Listener
	cfg config.Listener
}

func openListeners(cfg *config.Config, inherited map[string]net.Listener, log *slog.Logger) ([]boundListener, error) {
	var out []boundListener
	for _, l := range cfg.Listeners {
		if ln, ok := inherited[l.Address]; ok {
			delete(inherited, l.Address)
			log.Info("socket from systemd", "address", l.Address)
			out = append(out, boundListener{Listener: ln, cfg: l})
			continue
		}
		ln, err := listen.Listen(l.Spec)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("listener %s: %w", l.Address, err)
		}
		out = append(out, boundListener{Listener: ln, cfg: l})
	}
	return out, nil
}

// serve accepts on every listener until ctx ends, then drains.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, listeners []boundListener, fronts map[string]front) {
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	var conns, accepts sync.WaitGroup
	for _, l := range listeners {
		pol := cfg.PolicyFor(l.cfg)
		front := fronts[l.cfg.Protocol]
		log.Info("listening", "address", l.cfg.Address, "protocol", l.cfg.Protocol, "policy", pol.Name, "mode", fmt.Sprintf("%04o", l.cfg.Mode))
		slots := make(chan struct{}, l.cfg.MaxConnections)
		accepts.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						log.Error("accept", "address", l.cfg.Address, "err", err)
						time.Sleep(10 * time.Millisecond) // EMFILE and the like: don't spin
						continue
					}
					return
				}
				select {
				case slots <- struct{}{}:
				default:
					// Every connection holds a goroutine and buffers: past the
					// limit the gateway refuses rather than grows.
					log.Warn("connection refused: listener at max_connections", "address", l.cfg.Address, "max_connections", l.cfg.MaxConnections)
					c.Close()
					continue
				}
				conns.Go(func() {
					defer func() { c.Close(); <-slots }()
					// A client of clamd's protocol may half-close and still
					// read its verdict; an ICAP or milter client does not.
					jobCtx := hangup.With(connCtx, c, l.cfg.Protocol != config.ProtoClamd)
					front.ServeConn(jobCtx, ctx, c, pol, listen.PeerOf(c, l.cfg.Address))
				})
			}
		})
	}
	<-ctx.Done()
	log.Info("shutting down: no new connections", "grace", cfg.ShutdownGrace)
	status.NotifyStopping()
	closeAll(listeners)
	accepts.Wait()
	drained := make(chan struct{})
	go func() { conns.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(cfg.ShutdownGrace):
		log.Warn("grace period over: aborting running requests")
		cancelConns()
		<-drained
	}
}
