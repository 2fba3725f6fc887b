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
	"strconv"
	"sync"
	"sync/atomic"
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
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, with ...Option) error {
	var o options
	for _, opt := range with {
		opt(&o)
	}
	roots := &rootKeeper{}
	if err := roots.open(cfg, log); err != nil {
		return err
	}
	defer roots.closeAll()
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
	opts.SpoolBudget = spoolBudget(cfg, log)
	opts.Observers = append(opts.Observers, tel.metrics)
	if cfg.Audit {
		opts.Observers = append(opts.Observers, scan.AuditLog{Log: log})
	}
	life := newLifecycle(cfg, eng, pool.Clients(), log)
	if life != nil {
		opts.Cache = scan.NewVerdictCache(cfg.CacheEntries, cfg.CacheBytes)
		life.cache = opts.Cache
		tel.follow(life)
	} else if cfg.CacheEntries > 0 {
		log.Info("verdict cache off: the gateway does not know clamd's database (no [database] dir, or the built-in test database)")
	}
	tel.metrics.SetCache(opts.Cache.Size)
	dispatcher := scan.NewDispatcher(pool, log, opts)
	life.hold(dispatcher)
	tel.metrics.SetHeld(dispatcher.HeldFor)
	tel.metrics.SetSpool(dispatcher.Spool())
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
	srv := newServer(ctx, log, cfg.ShutdownGrace)
	for _, l := range listeners {
		srv.add(l.Listener, srv.newRoute(l.cfg, cfg.PolicyFor(l.cfg), fronts[l.cfg.Protocol]))
	}
	tel.metrics.ConfigLoaded(time.Now(), weights(cfg), false)
	if o.hangups != nil {
		r := &reloader{load: o.load, running: cfg, fronts: fronts, srv: srv, dispatcher: dispatcher, tel: tel, roots: roots, log: log,
			newFronts: func(c *config.Config) map[string]front { return newFronts(c, log, dispatcher, life) }}
		bg.Go(func() { r.run(ctx, o.hangups) })
	}
	srv.serve()
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
func newLifecycle(cfg *config.Config, eng *engine.Engine, backends []*clamd.Client, log *slog.Logger) *lifecycle {
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
	return &lifecycle{cfg: cfg.Database, dir: dir, log: log,
		reloader: &dbReload{backends: backends, mode: cfg.Database.Reload, engine: eng, log: log}}
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
	if err := clamd.WaitPing(ctx, pool); err != nil {
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
	cp := &clamdproto.Server{Dispatcher: d, Log: log, ReadTimeout: cfg.ReadTimeout,
		CommandTimeout: cfg.CommandTimeout, StreamTimeout: cfg.StreamTimeout}
	ic := &icap.Server{Dispatcher: d, Log: log, ReadTimeout: cfg.ReadTimeout, Settings: cfg.ICAP, Spool: d.Spool()}
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

// server accepts on the listeners until its context ends, then drains.
// Each connection is served by the route its listener had when it was
// accepted; a reload adds, removes and reroutes listeners while it runs.
type server struct {
	log         *slog.Logger
	stop        context.Context // ends: accept no more, idle connections close
	connCtx     context.Context // ends: running requests are aborted
	cancelConns context.CancelFunc
	conns       sync.WaitGroup
	accepts     sync.WaitGroup

	mu        sync.Mutex
	listeners map[string]*served // by address
	closed    bool               // shutting down: add nothing more
	grace     time.Duration
}

// served is one listening socket.
type served struct {
	net.Listener
	route atomic.Pointer[route]
}

// route is how a listener serves what it accepts: the listener's settings,
// its policy, its protocol's front, its connection slots. drain ends when
// the gateway stops or a reload replaces the route.
type route struct {
	cfg    config.Listener
	pol    *policy.Policy
	front  front
	slots  chan struct{} // the listener's max_connections
	uids   *uidSlots     // its max_connections_per_uid
	drain  context.Context
	retire context.CancelFunc
}

func newServer(ctx context.Context, log *slog.Logger, grace time.Duration) *server {
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &server{log: log, stop: ctx, connCtx: connCtx, cancelConns: cancel, listeners: map[string]*served{}, grace: grace}
}

func (s *server) newRoute(l config.Listener, pol *policy.Policy, f front) *route {
	drain, retire := context.WithCancel(s.stop)
	return &route{cfg: l, pol: pol, front: f, slots: make(chan struct{}, l.MaxConnections), uids: newUIDSlots(l.MaxPerUID),
		drain: drain, retire: retire}
}

// add starts accepting on ln.
func (s *server) add(ln net.Listener, r *route) {
	l := &served{Listener: ln}
	l.route.Store(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return
	}
	s.listeners[r.cfg.Address] = l
	s.log.Info("listening", "address", r.cfg.Address, "protocol", r.cfg.Protocol, "policy", r.pol.Name, "mode", fmt.Sprintf("%04o", r.cfg.Mode))
	s.accepts.Go(func() { s.accept(l) })
}

func (s *server) accept(l *served) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("accept", "address", l.route.Load().cfg.Address, "err", err)
				time.Sleep(10 * time.Millisecond) // EMFILE and the like: don't spin
				continue
			}
			return
		}
		r := l.route.Load()
		// A reload may retire the route between the load and here: a
		// connection served by a retired route would be dropped unread.
		// The new route is stored before the old one retires.
		for r.drain.Err() != nil {
			next := l.route.Load()
			if next == r {
				break // removed, not replaced
			}
			r = next
		}
		s.admit(c, r)
	}
}

// admit decides, from the peer's identity alone and before reading any
// byte, what a connection may hold, and serves it by its listener's route.
func (s *server) admit(c net.Conn, r *route) {
	peer := listen.PeerOf(c, r.cfg.Address)
	if !r.uids.take(peer) {
		s.log.Warn("connection refused: peer uid at max_connections_per_uid", "address", r.cfg.Address,
			"peer", peer.String(), "max_connections_per_uid", r.cfg.MaxPerUID)
		r.turnAway(c, "too many connections from uid "+strconv.FormatUint(uint64(peer.UID), 10))
		return
	}
	// A peer the policy refuses gets its refusal from the front, but takes
	// none of the listener's connections: outsiders cannot fill it. Its
	// uid's bound still applies.
	allowed := r.pol.AllowPeer(peer) == nil
	if allowed && !r.takeSlot() {
		r.uids.release(peer)
		s.log.Warn("connection refused: listener at max_connections", "address", r.cfg.Address, "max_connections", r.cfg.MaxConnections)
		r.turnAway(c, "too many connections")
		return
	}
	s.conns.Go(func() {
		defer func() {
			c.Close()
			r.uids.release(peer)
			if allowed {
				<-r.slots
			}
		}()
		// A client of clamd's protocol may half-close and still read its
		// verdict; an ICAP or milter client does not.
		jobCtx, stop := hangup.With(s.connCtx, c, r.cfg.Protocol != config.ProtoClamd)
		defer stop()
		r.front.ServeConn(jobCtx, r.drain, c, r.pol, peer)
	})
}

// serve waits until the gateway stops, then closes the listeners and
// drains the connections.
func (s *server) serve() {
	<-s.stop.Done()
	s.mu.Lock()
	s.closed = true
	grace := s.grace
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.log.Info("shutting down: no new connections", "grace", grace)
	status.NotifyStopping()
	s.accepts.Wait()
	drained := make(chan struct{})
	go func() { s.conns.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(grace):
		s.log.Warn("grace period over: aborting running requests")
		s.cancelConns()
		<-drained
	}
	s.cancelConns()
}

// turnAway closes a connection the listener will not serve, telling the
// client why when its front can say it without reading.
func (r *route) turnAway(c net.Conn, why string) {
	if t, ok := r.front.(interface{ TurnAway(net.Conn, string) }); ok {
		t.TurnAway(c, why)
	}
	c.Close()
}

// takeSlot reserves one of the listener's connections. Every connection
// holds a goroutine and buffers: past the limit the gateway refuses rather
// than grows.
func (r *route) takeSlot() bool {
	select {
	case r.slots <- struct{}{}:
		return true
	default:
		return false
	}
}
