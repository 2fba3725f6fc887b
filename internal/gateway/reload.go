package gateway

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/listen"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
	"clamgate/internal/status"
	"clamgate/internal/tlsid"
)

// Option changes how Run serves.
type Option func(*options)

type options struct {
	hangups <-chan os.Signal
	load    func() (*config.Config, error)
}

// ReloadOn makes Run re-read its configuration with load on every signal
// from hangups (SIGHUP), and apply what can change live. A nil load means
// there is no file to re-read (flags-only): the signal is only logged.
func ReloadOn(hangups <-chan os.Signal, load func() (*config.Config, error)) Option {
	return func(o *options) { o.hangups, o.load = hangups, load }
}

// reloader applies a new configuration to a running gateway, or refuses it
// whole: a file with any error, or a listener that cannot be bound, leaves
// the running configuration in force.
//
// config.Keys says, key by key, what applies a new value here: the
// dispatcher's limits and weights (for jobs admitted from then on), a
// listener's route (its policies and front: a listener whose rules change
// retires its connections, which finish their request in progress and
// close, so that no client keeps the old rights), its socket's rights, the
// fronts' settings and shutdown_grace. A restart-only key is logged as
// needing a restart and keeps its running value (config.KeepRestartOnly).
type reloader struct {
	load       func() (*config.Config, error)
	running    *serving
	fronts     map[string]front
	newFronts  func(*serving) map[string]front
	srv        *server
	dispatcher *scan.Dispatcher
	tel        *telemetry
	roots      *rootKeeper
	tls        *tlsSet
	log        *slog.Logger
}

func (r *reloader) run(ctx context.Context, hangups <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hangups:
			r.reload()
		}
	}
}

func (r *reloader) reload() {
	if r.load == nil {
		r.log.Warn("SIGHUP: started with flags only, there is no configuration file to re-read; nothing changed")
		return
	}
	// Before the first READY=1, a READY=1 here would tell systemd the
	// gateway serves while clamd has not answered yet.
	if r.tel.answered.Load() {
		status.NotifyReloading()
		defer status.NotifyReady(r.log)
	}
	r.log.Info("SIGHUP: re-reading the configuration")
	// TLS files are re-read whatever becomes of the configuration: a
	// renewed certificate must not wait for a valid file.
	defer r.tls.reload()
	next, err := r.load()
	if err == nil {
		err = r.apply(next)
	}
	if err != nil {
		for _, e := range errorList(err) {
			r.log.Error("configuration error", "err", e.Error())
		}
		r.log.Error("reload refused: the running configuration stays in force")
		r.tel.metrics.ConfigRefused()
	}
}

func errorList(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (r *reloader) apply(cfg *config.Config) error {
	start := time.Now()
	restart := config.KeepRestartOnly(r.running.cfg, cfg)
	next, err := newServing(cfg)
	if err != nil {
		return err
	}
	if err := r.roots.open(next, r.log); err != nil {
		return err
	}
	c, err := r.prepare(next)
	if err != nil {
		r.roots.forget(next)
		return err
	}
	for _, key := range restart {
		r.log.Warn("configuration changed a key that needs a restart: the running value stays until then", "key", key)
	}
	r.dispatcher.Reconfigure(next.dispatchOptions())
	r.srv.setGrace(cfg.ShutdownGrace)
	c.commit(r.srv, next)
	r.tls.set(c.tls)
	r.running, r.fronts = next, c.fronts
	// Kept listeners go on with the policies they had; the roots no
	// listener serves any more close once retired requests have had the
	// grace to finish.
	unused := r.roots.unused(tokenPolicies(next, r.srv.policies()))
	time.AfterFunc(cfg.ShutdownGrace, func() { r.roots.close(unused) })
	r.log.Info("configuration reloaded", "listeners_added", c.added(), "listeners_removed", c.removed,
		"listeners_rerouted", c.rerouted(), "listeners_repermissioned", c.repermed, "needs_restart", restart,
		"took", time.Since(start).Round(time.Microsecond))
	r.tel.metrics.ConfigLoaded(time.Now(), weights(cfg), true)
	return nil
}

// change is a reload's effect on the listeners, prepared so that it cannot
// fail once committed: new sockets are bound and kept ones re-permissioned
// before anything else changes.
type change struct {
	fronts  map[string]front
	bound   []boundListener
	reroute []config.Listener
	removed []string
	// repermed are kept listeners whose socket got a new mode, owner or
	// group: their connections go on.
	repermed []string
	tls      map[string]*tlsid.Store // the tls: listeners' material
}

func (r *reloader) prepare(next *serving) (*change, error) {
	material, err := r.tls.load(next.cfg)
	if err != nil {
		return nil, err
	}
	c := &change{fronts: r.reuseFronts(next), tls: material}
	running, gone := map[string]config.Listener{}, map[string]bool{}
	for _, l := range r.running.cfg.Listeners {
		running[l.Address], gone[l.Address] = l, true
	}
	var repermed []config.Listener
	undo := func(err error) (*change, error) {
		closeAll(c.bound)
		for _, l := range repermed {
			_ = listen.Repermission(r.srv.listener(l.Address), next.spec(l), r.running.spec(running[l.Address]))
		}
		return nil, err
	}
	for _, l := range next.cfg.Listeners {
		old, kept := running[l.Address]
		delete(gone, l.Address)
		if !kept {
			ln, err := listen.Listen(next.spec(l))
			if err != nil {
				return undo(&config.Error{File: "listener", Key: l.Address, Msg: err.Error()})
			}
			c.bound = append(c.bound, boundListener{Listener: ln, cfg: l})
			continue
		}
		if err := listen.Repermission(r.srv.listener(l.Address), r.running.spec(old), next.spec(l)); err != nil {
			return undo(&config.Error{File: "listener", Key: l.Address, Msg: err.Error()})
		}
		repermed = append(repermed, l)
		if next.spec(l) != r.running.spec(old) {
			c.repermed = append(c.repermed, l.Address)
		}
		if r.rerouted(old, l, next, c.fronts) {
			c.reroute = append(c.reroute, l)
		}
	}
	for addr := range gone {
		c.removed = append(c.removed, addr)
	}
	return c, nil
}

// rerouted reports whether a kept listener serves differently under next:
// then its connections are retired. New socket rights alone are not a
// reason: like a file's, they are checked when a client opens it.
func (r *reloader) rerouted(old, l config.Listener, next *serving, fronts map[string]front) bool {
	old.Mode, old.Owner, old.Group = l.Mode, l.Owner, l.Group
	return !reflect.DeepEqual(old, l) || r.fronts[old.Protocol] != fronts[l.Protocol] ||
		!slices.EqualFunc(r.running.policiesFor(old), next.policiesFor(l), (*policy.Policy).SameRules)
}

// reuseFronts keeps the running front of each protocol whose settings are
// unchanged, so that its connections (and its per-listener counts) go on.
func (r *reloader) reuseFronts(sv *serving) map[string]front {
	fronts := r.newFronts(sv)
	cur, next := r.running.cfg, sv.cfg
	same := map[string]bool{
		config.ProtoClamd:  cur.ReadTimeout == next.ReadTimeout && cur.CommandTimeout == next.CommandTimeout && cur.StreamTimeout == next.StreamTimeout,
		config.ProtoICAP:   cur.ReadTimeout == next.ReadTimeout && reflect.DeepEqual(cur.ICAP, next.ICAP),
		config.ProtoMilter: reflect.DeepEqual(cur.Milter, next.Milter),
		config.ProtoHTTP:   sameHTTPFront(cur, next),
	}
	for proto := range fronts {
		if same[proto] {
			fronts[proto] = r.fronts[proto]
		}
	}
	return fronts
}

func (c *change) commit(srv *server, next *serving) {
	reconfigureHTTP(c.fronts, next)
	for _, addr := range c.removed {
		srv.remove(addr)
	}
	for _, l := range c.reroute {
		srv.reroute(srv.newRoute(l, next.policiesFor(l), c.fronts[l.Protocol], c.tls[l.Address]))
	}
	for _, b := range c.bound {
		srv.add(b.Listener, srv.newRoute(b.cfg, next.policiesFor(b.cfg), c.fronts[b.cfg.Protocol], c.tls[b.cfg.Address]))
	}
}

func (c *change) added() []string {
	var out []string
	for _, b := range c.bound {
		out = append(out, b.cfg.Address)
	}
	return out
}

func (c *change) rerouted() []string {
	var out []string
	for _, l := range c.reroute {
		out = append(out, l.Address)
	}
	return out
}

// policies are the policies the listeners serve now.
func (s *server) policies() map[*policy.Policy]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := map[*policy.Policy]bool{}
	for _, l := range s.listeners {
		for _, p := range l.route.Load().pols {
			in[p] = true
		}
	}
	return in
}

// remove stops accepting on a listener (a unix socket's file goes) and
// retires its connections: each finishes the request in progress, then
// closes.
func (s *server) remove(addr string) {
	s.mu.Lock()
	l := s.listeners[addr]
	delete(s.listeners, addr)
	s.mu.Unlock()
	if l == nil {
		return
	}
	l.Close()
	l.route.Load().retire()
	s.log.Info("listener removed: its connections close once their request is done", "address", addr)
}

// reroute serves a kept listener's new connections with r, and retires
// the connections of its previous route.
func (s *server) reroute(r *route) {
	s.mu.Lock()
	l := s.listeners[r.cfg.Address]
	s.mu.Unlock()
	if l == nil {
		r.retire()
		return
	}
	old := l.route.Load()
	if old.cfg.MaxConnections == r.cfg.MaxConnections {
		r.slots = old.slots // its connections still count against the limit
	}
	if old.cfg.MaxPerUID == r.cfg.MaxPerUID {
		r.uids = old.uids // and against each uid's
	}
	l.route.Store(r)
	old.retire()
	s.log.Info("listener rerouted: its connections close once their request is done", "address", r.cfg.Address, "policy", r.pol.Name)
}

func (s *server) setGrace(d time.Duration) {
	s.mu.Lock()
	s.grace = d
	s.mu.Unlock()
}

// weights is each policy's weight, for the metrics.
func weights(cfg *config.Config) map[string]int {
	out := map[string]int{}
	for name, l := range limits(cfg) {
		out[name] = l.Weight
	}
	return out
}
