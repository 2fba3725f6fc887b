package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/metrics"
	"clamgate/internal/tlsid"
)

// handshakeTimeout bounds a TLS handshake: a client that connects and
// sends nothing holds a goroutine and a descriptor no longer.
const handshakeTimeout = 10 * time.Second

// tlsSet is the TLS material the gateway serves (by listener address) and
// forwards with (the backend's), re-read on SIGHUP and when the files
// change. Each handshake takes the material current at that moment, so
// connections in flight finish on the material they started with.
type tlsSet struct {
	log     *slog.Logger
	watch   *tlsid.Watcher // nil: SIGHUP only
	mu      sync.Mutex
	serve   map[string]*tlsid.Store
	backend *tlsid.Store
}

func newTLSSet(cfg *config.Config, log *slog.Logger) (*tlsSet, error) {
	t := &tlsSet{log: log, serve: map[string]*tlsid.Store{}}
	if cfg.BackendTLS != (tlsid.Files{}) {
		s, err := tlsid.Load("backend "+cfg.Backend, cfg.BackendTLS)
		if err != nil {
			return nil, err
		}
		t.backend = s
	}
	stores, err := t.load(cfg)
	if err != nil {
		return nil, err
	}
	t.set(stores)
	return t, nil
}

// load reads the material of cfg's tls: listeners, reusing the store of a
// listener whose files are the same.
func (t *tlsSet) load(cfg *config.Config) (map[string]*tlsid.Store, error) {
	out := map[string]*tlsid.Store{}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range cfg.Listeners {
		if l.TLS == (tlsid.Files{}) {
			continue
		}
		if s := t.serve[l.Address]; s != nil && s.Files() == l.TLS {
			out[l.Address] = s
			continue
		}
		s, err := tlsid.Load("listener "+l.Address, l.TLS)
		if err != nil {
			return nil, &config.Error{File: "listener", Key: l.Address, Msg: err.Error()}
		}
		out[l.Address] = s
	}
	return out, nil
}

// set makes stores the listeners' material, and watches their files.
func (t *tlsSet) set(stores map[string]*tlsid.Store) {
	t.mu.Lock()
	t.serve = stores
	t.mu.Unlock()
	if t.watch != nil {
		t.watch.Watch(t.all()...)
	}
}

func (t *tlsSet) all() []*tlsid.Store {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*tlsid.Store
	for _, s := range t.serve {
		out = append(out, s)
	}
	if t.backend != nil {
		out = append(out, t.backend)
	}
	return out
}

// dial is the backends' TLS dialer; nil when no backend is tls:.
func (t *tlsSet) dial() func(ctx context.Context, network, address string) (net.Conn, error) {
	if t.backend == nil {
		return nil
	}
	return t.backend.Dialer()
}

// run watches the files until ctx ends.
func (t *tlsSet) run(ctx context.Context) {
	w, err := tlsid.NewWatcher(t.log)
	if err != nil {
		t.log.Warn("TLS files will be re-read on SIGHUP only", "err", err)
		return
	}
	t.mu.Lock()
	t.watch = w
	t.mu.Unlock()
	w.Watch(t.all()...)
	w.Run(ctx, t.all)
}

// reload re-reads every file (SIGHUP).
func (t *tlsSet) reload() { tlsid.ReloadAll(t.log, t.all()...) }

// expiry is for tls_certificate_expiry_seconds.
func (t *tlsSet) expiry() []metrics.TLSExpiry {
	var out []metrics.TLSExpiry
	for _, s := range t.all() {
		role, address, _ := strings.Cut(s.Name, " ")
		out = append(out, metrics.TLSExpiry{Role: role, Address: address, NotAfter: s.NotAfter()})
	}
	slices.SortFunc(out, func(a, b metrics.TLSExpiry) int { return cmp.Compare(a.Role+a.Address, b.Role+b.Address) })
	return out
}

// handshake completes a TLS listener's handshake off the accept loop,
// within handshakeTimeout, then admits the connection as any other. A
// failed handshake (no certificate, an unknown CA, an expired certificate,
// plain TCP) is refused before any byte of the protocol is read, and
// counted. Handshakes in progress are bounded by max_connections.
func (s *server) handshake(c net.Conn, r *route) {
	select {
	case r.handshakes <- struct{}{}:
	default:
		s.refuseTLS(c, r, "busy", errors.New("too many TLS handshakes in progress (max_connections)"))
		return
	}
	s.conns.Go(func() {
		tc := tls.Server(c, serverConfig(r))
		err := tlsid.Handshake(s.stop, tc, handshakeTimeout)
		<-r.handshakes
		if err != nil {
			s.refuseTLS(c, r, tlsid.Reason(err), err)
			return
		}
		s.admitConn(tc, r)
	})
}

// serverConfig is the listener's TLS configuration; an HTTP listener also
// offers HTTP/2 and HTTP/1.1 by ALPN (net/http serves h2 on a connection
// that negotiated it), the clamd protocol and ICAP name no protocol.
func serverConfig(r *route) *tls.Config {
	conf := r.tls.ServerConfig()
	if r.cfg.Protocol != config.ProtoHTTP {
		return conf
	}
	conf = conf.Clone()
	current := conf.GetConfigForClient
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := current(hello)
		if c != nil {
			c = c.Clone()
			c.NextProtos = []string{"h2", "http/1.1"}
		}
		return c, err
	}
	return conf
}

// refuseTLS closes a connection refused before its protocol, logs why and
// counts it.
func (s *server) refuseTLS(c net.Conn, r *route, reason string, why error) {
	c.Close()
	s.log.Warn("TLS connection refused", "address", r.cfg.Address, "remote", c.RemoteAddr().String(), "reason", reason, "err", why.Error())
	if s.tlsRefused != nil {
		s.tlsRefused(r.cfg.Address, reason)
	}
}

// netConn is the socket beneath a TLS connection, for what probes the
// socket itself (the hang-up watcher).
func netConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}
