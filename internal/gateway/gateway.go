// Package gateway assembles the daemon: listeners and their policies, the
// protocol fronts, the dispatcher and the clamd backend (external, or a
// managed clamd), and shuts them down gracefully. The configuration is
// data; what it is served with (the enforced policies, the sockets, the
// dispatcher's options) is made here, at start and at each reload
// (serving.go, reload.go).
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
	"clamgate/internal/httpapi"
	"clamgate/internal/icap"
	"clamgate/internal/identity"
	"clamgate/internal/listen"
	"clamgate/internal/milter"
	"clamgate/internal/pathscan"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
	"clamgate/internal/startup"
	"clamgate/internal/status"
	"clamgate/internal/tlsid"
)

// Run serves until ctx is cancelled, then stops accepting, lets running
// requests finish for the configured grace period, and returns.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, with ...Option) error {
	var o options
	for _, opt := range with {
		opt(&o)
	}
	sv, err := checkedServing(ctx, cfg)
	if err != nil {
		return err
	}
	roots := &rootKeeper{}
	if err := roots.open(sv, log); err != nil {
		return err
	}
	defer roots.closeAll()
	eng, addrs, err := prepareEngine(cfg, log)
	if err != nil {
		return err
	}
	tlsMaterial, err := newTLSSet(cfg, log)
	if err != nil {
		return err
	}
	pool, err := clamd.NewPool(addrs, cfg.Fallback, cfg.BackendTimeout, cfg.HealthInterval, log, tlsMaterial.dial())
	if err != nil {
		return err
	}
	pool.DownWait = cfg.BackendDownWait
	if !pool.Unix() && pathScans(cfg) {
		log.Info("path scans and FILDES reach the backend as streams of the files opened here (INSTREAM): it is not on a unix socket", "backend", pool.Primary().String())
	}
	inherited := listen.Inherited()
	listeners, err := openListeners(sv, inherited, log)
	if err != nil {
		return err
	}
	tel := newTelemetry(cfg, pool, eng, log)
	tel.metrics.SetTLS(tlsMaterial.expiry)
	opts := sv.dispatchOptions()
	opts.SpoolBudget = spoolBudget(cfg, log)
	board := httpapi.NewBoard()
	opts.Observers = append(opts.Observers, tel.metrics, board)
	if cfg.Audit {
		opts.Observers = append(opts.Observers, scan.AuditLog{Log: log})
	}
	life := newLifecycle(cfg, eng, pool.Clients(), log)
	turns, err := newTurns(cfg.Database, log)
	if err != nil {
		closeAll(listeners)
		return err
	}
	if life != nil {
		life.base = ctx
		life.reloader.turns = turns
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
	tel.held = dispatcher.HeldFor
	tel.metrics.SetSpool(dispatcher.Spool())
	page := statusSource(board, tel, life)
	walks := &pathscan.Slots{} // one bound for every front's path scans, kept across reloads
	fronts := newFronts(sv, log, dispatcher, life, page, walks)
	var bg sync.WaitGroup
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopEngine(); bg.Wait() }()
	if err := tel.start(ctx, &bg, inherited); err != nil {
		closeAll(listeners)
		return err
	}
	ready := func() {}
	if eng != nil {
		// The managed clamd is loading its database: jobs wait for it (up
		// to their policy's max_wait) as during a frugal reload, instead
		// of failing, so that the connections a restart left queued in
		// systemd's socket (clamgate.socket) get verdicts.
		ready = dispatcher.Hold()
		bg.Go(func() { _ = eng.Run(engCtx) })
		bg.Go(func() { releaseOnExit(ctx, eng, pool, ready) })
	}
	bg.Go(func() {
		ok := waitBackend(ctx, log, pool)
		ready()
		if ok {
			tel.serving(ctx, &bg)
		}
	})
	bg.Go(func() { pool.Run(ctx) })
	bg.Go(func() { tlsMaterial.run(ctx) })
	if life != nil {
		bg.Go(func() { life.run(ctx) })
	}
	srv := newServer(ctx, log, cfg.ShutdownGrace)
	srv.tlsRefused = tel.metrics.TLSRefused
	for _, l := range listeners {
		srv.add(l.Listener, srv.newRoute(l.cfg, sv.policiesFor(l.cfg), fronts[l.cfg.Protocol], tlsMaterial.serve[l.cfg.Address]))
	}
	tel.metrics.ConfigLoaded(time.Now(), weights(cfg), false)
	if o.hangups != nil {
		r := &reloader{load: o.load, running: sv, fronts: fronts, srv: srv, dispatcher: dispatcher, tel: tel, roots: roots, log: log, tls: tlsMaterial,
			newFronts: func(s *serving) map[string]front { return newFronts(s, log, dispatcher, life, page, walks) }}
		bg.Go(func() { r.run(ctx, o.hangups) })
	}
	srv.serve()
	return nil
}

// checkedServing runs the start-up checks `config check` runs (a refusal
// of one is a refusal of both), then makes what cfg is served with.
func checkedServing(ctx context.Context, cfg *config.Config) (*serving, error) {
	if err := startup.Run(ctx, cfg); err != nil {
		return nil, err
	}
	return newServing(cfg)
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
		log.Warn("using clamgate's built-in TEST database, as configured ([engine] database = \"test\"): EICAR and ClamAV's test files only, no protection; install and run freshclam and drop that setting for real protection")
		return
	}
	log.Info("managed clamd uses database", "dir", dir)
}

// releaseOnExit ends the start's hold when the managed clamd exits before
// it ever answered: a clamd that cannot load its database crash-loops, and
// jobs then get clamd's unavailability at once (as /readyz names the
// loop) instead of waiting max_wait each for an engine that is not coming.
func releaseOnExit(ctx context.Context, eng *engine.Engine, pool *clamd.Pool, release func()) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if pool.Ready() == nil {
			return // answered: waitBackend releases
		}
		if eng.Health().Exits > 0 {
			release()
			return
		}
	}
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

func newFronts(sv *serving, log *slog.Logger, d *scan.Dispatcher, life *lifecycle, page *httpapi.StatusSource, walks *pathscan.Slots) map[string]front {
	cfg := sv.cfg
	cp := &clamdproto.Server{Dispatcher: d, Log: log, ReadTimeout: cfg.ReadTimeout,
		CommandTimeout: cfg.CommandTimeout, StreamTimeout: cfg.StreamTimeout, Walks: walks}
	ic := &icap.Server{Dispatcher: d, Log: log, ReadTimeout: cfg.ReadTimeout, Settings: cfg.ICAP, Spool: d.Spool()}
	if life != nil {
		cp.StatsExtra, cp.SelfCheck, ic.Tag = life.Stats, life, life.Tag
	}
	return map[string]front{
		config.ProtoClamd:  cp,
		config.ProtoMilter: &milter.Server{Dispatcher: d, Log: log, Config: cfg.Milter, Spool: d.Spool(), SpoolDir: cfg.SpoolDir},
		config.ProtoICAP:   ic,
		config.ProtoHTTP:   newHTTPFront(sv, log, d, page, walks),
	}
}

type boundListener struct {
	net.Listener
	cfg config.Listener
}

func openListeners(sv *serving, inherited map[string]net.Listener, log *slog.Logger) ([]boundListener, error) {
	var out []boundListener
	for _, l := range sv.cfg.Listeners {
		if ln, ok := inherited[l.Address]; ok {
			delete(inherited, l.Address)
			log.Info("socket from systemd", "address", l.Address)
			if err := listen.CheckInherited(sv.spec(l)); err != nil {
				log.Warn("socket from systemd differs from its listener", "err", err)
			}
			out = append(out, boundListener{Listener: ln, cfg: l})
			continue
		}
		ln, err := listen.Listen(sv.spec(l))
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
	turning   chan struct{}       // turned-away connections being drained
	wait      func(time.Duration) // pause, replaced in tests; nil: sleep
	// tlsRefused counts a TLS connection refused before its protocol.
	tlsRefused func(listener, reason string)
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
	cfg   config.Listener
	pol   *policy.Policy   // the first of pols: what logs name the route by
	pols  []*policy.Policy // a TLS listener's policies, chosen by certificate
	front front
	// tls is a tls: listener's material, nil else; handshakes bounds the
	// handshakes in progress.
	tls        *tlsid.Store
	handshakes chan struct{}
	slots      chan struct{} // the listener's max_connections
	uids       *uidSlots     // its max_connections_per_uid
	drain      context.Context
	retire     context.CancelFunc
}

func newServer(ctx context.Context, log *slog.Logger, grace time.Duration) *server {
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &server{log: log, stop: ctx, connCtx: connCtx, cancelConns: cancel, listeners: map[string]*served{}, grace: grace,
		turning: make(chan struct{}, maxTurningAway)}
}

func (s *server) newRoute(l config.Listener, pols []*policy.Policy, f front, material *tlsid.Store) *route {
	drain, retire := context.WithCancel(s.stop)
	return &route{cfg: l, pol: pols[0], pols: pols, front: f, slots: make(chan struct{}, l.MaxConnections), uids: newUIDSlots(l.MaxPerUID),
		drain: drain, retire: retire, tls: material, handshakes: make(chan struct{}, l.MaxConnections)}
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

// listener is the socket served at addr, nil when none.
func (s *server) listener(addr string) net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.listeners[addr]; l != nil {
		return l.Listener
	}
	return nil
}

func (s *server) accept(l *served) {
	var backoff acceptBackoff
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// EMFILE and the like: retry later, without a line per error.
			d, first := backoff.failed()
			if first {
				s.log.Error("accept failing: retrying with backoff, one line per streak", "address", l.route.Load().cfg.Address, "err", err)
			}
			s.pause(d)
			continue
		}
		if n, since := backoff.reset(); n > 0 {
			s.log.Debug("accepting again", "address", l.route.Load().cfg.Address, "errors", n, "after", time.Since(since).Round(time.Millisecond))
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

// acceptBackoff spaces out retries after accept errors as net/http does:
// 5 ms, doubling up to 1 s, back to nothing once an accept succeeds.
type acceptBackoff struct {
	delay  time.Duration
	errors int
	since  time.Time
}

// failed counts an error and says how long to wait before the next
// accept, and whether it starts a streak.
func (b *acceptBackoff) failed() (wait time.Duration, first bool) {
	if b.errors == 0 {
		b.since = time.Now()
	}
	b.errors++
	b.delay = min(max(2*b.delay, 5*time.Millisecond), time.Second)
	return b.delay, b.errors == 1
}

// reset ends a streak, returning how many errors it had and since when.
func (b *acceptBackoff) reset() (errors int, since time.Time) {
	errors, since = b.errors, b.since
	*b = acceptBackoff{}
	return errors, since
}

// pause waits d, or less when the gateway stops.
func (s *server) pause(d time.Duration) {
	if s.wait != nil {
		s.wait(d)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.stop.Done():
	}
}

// admit serves a connection by its listener's route; a TLS listener's
// completes its handshake first.
func (s *server) admit(c net.Conn, r *route) {
	if r.tls != nil {
		s.handshake(c, r)
		return
	}
	s.admitConn(c, r)
}

// admitConn decides, from the peer's identity alone and before reading
// any byte, whether a connection is served, under which of the listener's
// policies and what it may hold, and serves it. This is the only admission
// decision: the fronts are handed it (internal/deps_test.go keeps
// internal/identity from them).
func (s *server) admitConn(c net.Conn, r *route) {
	id := identity.Of(c, r.cfg.Address)
	peer := id.Peer
	pol, err := id.Choose(r.pols)
	if err != nil {
		s.refuseTLS(c, r, tlsid.NoPolicy, fmt.Errorf("%s: %w", peer.Cert, err))
		return
	}
	if !r.uids.take(peer) {
		s.log.Warn("connection refused: peer uid at max_connections_per_uid", "address", r.cfg.Address,
			"peer", peer.String(), "max_connections_per_uid", r.cfg.MaxPerUID)
		s.turnAway(c, r, "too many connections from uid "+strconv.FormatUint(uint64(peer.UID), 10))
		return
	}
	// A peer the policy refuses gets its refusal from the front, but takes
	// none of the listener's connections: outsiders cannot fill it. Its
	// uid's bound still applies.
	refusal := id.Admit(pol)
	if refusal == nil && !r.takeSlot() {
		r.uids.release(peer)
		s.log.Warn("connection refused: listener at max_connections", "address", r.cfg.Address, "max_connections", r.cfg.MaxConnections)
		s.turnAway(c, r, "too many connections")
		return
	}
	s.conns.Go(func() {
		defer func() {
			c.Close()
			r.uids.release(peer)
			if refusal == nil {
				<-r.slots
			}
		}()
		// A client of clamd's protocol may half-close and still read its
		// verdict; an ICAP or milter client does not.
		jobCtx, stop := hangup.With(s.connCtx, netConn(c), r.cfg.Protocol != config.ProtoClamd)
		defer stop()
		if refusal != nil {
			s.refuse(jobCtx, c, r, pol, peer, refusal)
			return
		}
		r.front.ServeConn(jobCtx, r.drain, c, pol, peer)
	})
}

// refuser is a front that can tell a client it was not admitted, in its
// protocol. A front without it (milter, which has no way to say why before
// negotiation: the MTA applies its milter_default_action) has the
// connection closed, after the gateway logs why.
type refuser interface {
	Refuse(ctx context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer, why error)
}

func (s *server) refuse(ctx context.Context, c net.Conn, r *route, pol *policy.Policy, peer policy.Peer, why error) {
	if f, ok := r.front.(refuser); ok {
		f.Refuse(ctx, c, pol, peer, why)
		return
	}
	s.log.Warn("connection refused", "address", r.cfg.Address, "protocol", r.cfg.Protocol, "client", pol.Name,
		"peer", peer.String(), "reason", why.Error())
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

// Bounds of the drain after a turn-away: enough for a client to finish
// sending its first request, and no more connections at once than a small
// fixed number, so that a flood of turned-away connections costs the
// gateway a bounded number of goroutines.
const (
	turnAwayLinger = time.Second
	turnAwayBytes  = 64 << 10
	maxTurningAway = 256
)

// turnAway closes a connection the listener will not serve, telling the
// client why when its front can say it without reading. Closing with the
// client's request unread would make the kernel reset the connection and
// could destroy the reply before it is read, so the gateway half-closes
// and drains what the client sends, briefly; past maxTurningAway such
// drains it only discards what has already arrived.
func (s *server) turnAway(c net.Conn, r *route, why string) {
	if t, ok := r.front.(interface{ TurnAway(net.Conn, string) }); ok {
		t.TurnAway(c, why)
	}
	select {
	case s.turning <- struct{}{}:
		s.conns.Go(func() {
			defer func() { c.Close(); <-s.turning }()
			listen.Linger(c, turnAwayLinger, turnAwayBytes)
		})
	default:
		listen.DiscardQueued(c, turnAwayBytes)
		c.Close()
	}
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
