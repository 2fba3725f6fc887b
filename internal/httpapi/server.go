// Package httpapi is the HTTP front: the native scan API (/v1, described
// by openapi.json), a drop-in for clamav-rest's routes, and the status
// page. Like the other fronts it turns requests into scan.Jobs for the
// dispatcher and never reaches the backend; the gateway accepts and admits
// each connection (internal/identity) and hands it here with its
// listener's policy. A request may choose another policy by its bearer
// token, through the Tokens lookup the gateway provides.
//
// Each connection gets its own net/http server, so that the gateway keeps
// owning connections (its slots, its hang-up watcher, its drain) as for
// the other fronts; HTTP/1.1 and HTTP/2 with prior knowledge (h2c) are
// served on it.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/internal/pathscan"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// Bounds of what one client may make the front hold.
const (
	// MaxHeaderBytes bounds a request's header block (HTTP/1.1) and
	// header list (HTTP/2).
	MaxHeaderBytes = 16 << 10
	// MaxStreams bounds the requests one HTTP/2 connection runs at once,
	// as one HTTP/1.1 connection runs one: each may hold a spool file.
	MaxStreams = 16
	// MaxParts bounds the parts of one multipart request.
	MaxParts = 256
	// maxPartHeader bounds the header of one part: multipart's own limit
	// is megabytes.
	maxPartHeader = 8 << 10
	// maxField bounds a part that carries no file, read and dropped.
	maxField = 64 << 10
)

// Server is the HTTP front.
type Server struct {
	Dispatcher *scan.Dispatcher
	Log        *slog.Logger
	// Tokens is the policy a bearer token chooses (nil when none); nil
	// when no policy has tokens.
	Tokens func(token string) *policy.Policy
	// ReadTimeout bounds the wait for a request's header and an idle
	// keep-alive connection; RequestTimeout a whole request, body and
	// scan included.
	ReadTimeout, RequestTimeout time.Duration
	// Status feeds the status page (/ and /v1/status); nil: none.
	Status *StatusSource
	// StaleAfter is the database age past which /v1/version says stale.
	StaleAfter time.Duration
	// Walks bounds the directory descriptors all path scans hold, shared
	// with the other fronts that walk; nil: the server's own bound.
	Walks *pathscan.Slots

	version  versionCache
	walkOnce sync.Once
	walk     *pathscan.Walker
	reconf   atomic.Pointer[reconf]
}

// conn carries what the gateway decided about a connection to its requests.
type connInfo struct {
	pol     *policy.Policy
	peer    policy.Peer
	jobCtx  context.Context // ends when the client hangs up or the gateway aborts
	drained func() bool     // the gateway no longer serves this connection
}

type infoKey struct{}

func info(r *http.Request) *connInfo { return r.Context().Value(infoKey{}).(*connInfo) }

// ServeConn serves one admitted connection until the client closes it,
// drain ends (running requests finish, idle ones close) or ctx ends
// (everything stops). A TLS connection (a tls: listener) is served as it
// is, so that net/http sees its ALPN and serves HTTP/2 when it says h2.
func (s *Server) ServeConn(ctx, drain context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer) {
	ln := newOneConn(c)
	ci := &connInfo{pol: pol, peer: peer, jobCtx: ctx, drained: func() bool { return drain.Err() != nil }}
	srv := s.httpServer(ci, ln)
	go func() {
		select {
		case <-ln.closed:
			return
		case <-drain.Done():
		case <-ctx.Done():
		}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_ = srv.Shutdown(sctx) // returns when running requests end, or ctx does
		srv.Close()
	}()
	_ = srv.Serve(ln)
	ln.unserved()
	<-ln.closed
}

func (s *Server) httpServer(ci *connInfo, ln *oneConn) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true) // over TLS, when the client's ALPN chose h2
	return &http.Server{
		Handler:           s.routes(),
		Protocols:         &p,
		ReadHeaderTimeout: s.ReadTimeout,
		IdleTimeout:       s.ReadTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: MaxStreams, MaxDecoderHeaderTableSize: 4096, MaxReadFrameSize: 1 << 20},
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithValue(context.Background(), infoKey{}, ci) },
		ConnState:         ln.state,
	}
}

// Refuse answers a client the gateway did not admit: 403 to its first
// request, then the connection closes.
func (s *Server) Refuse(ctx context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer, why error) {
	s.Log.Warn("connection refused", "protocol", "http", "client", pol.Name, "peer", peer.String(), "reason", why.Error())
	ln := newOneConn(c)
	srv := &http.Server{ReadHeaderTimeout: s.ReadTimeout, MaxHeaderBytes: MaxHeaderBytes, ConnState: ln.state,
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			problem(w, http.StatusForbidden, why.Error())
		})}
	go func() {
		select {
		case <-ln.closed:
		case <-ctx.Done():
			srv.Close()
		}
	}()
	_ = srv.Serve(ln)
	ln.unserved()
	<-ln.closed
}

// oneConn is a listener that yields one connection, then blocks until
// net/http reports that connection closed (or hijacked). The connection
// is not wrapped: net/http must see a *tls.Conn as one.
type oneConn struct {
	c        chan net.Conn
	closed   chan struct{}
	once     sync.Once
	shut     chan struct{} // Close was called
	shutOnce sync.Once
	addr     net.Addr
}

func newOneConn(c net.Conn) *oneConn {
	l := &oneConn{c: make(chan net.Conn, 1), closed: make(chan struct{}), shut: make(chan struct{}), addr: c.LocalAddr()}
	l.c <- c
	return l
}

// state is the server's ConnState hook.
func (l *oneConn) state(_ net.Conn, st http.ConnState) {
	if st == http.StateClosed || st == http.StateHijacked {
		l.once.Do(func() { close(l.closed) })
	}
}

// unserved closes the connection if Serve returned without taking it (it
// was shut down first): nothing else would.
func (l *oneConn) unserved() {
	select {
	case c := <-l.c:
		c.Close()
		l.once.Do(func() { close(l.closed) })
	default:
	}
}

func (l *oneConn) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	default:
	}
	select {
	case c := <-l.c:
		return c, nil
	case <-l.closed:
	case <-l.shut:
	}
	return nil, net.ErrClosed
}

// Close is called by the http.Server on shutdown: Accept returns, so that
// Serve does, which Shutdown waits for before it closes idle connections
// (an HTTP/1.1 keep-alive connection would otherwise stay open until its
// idle timeout). The connection itself closes when served.
func (l *oneConn) Close() error {
	l.shutOnce.Do(func() { close(l.shut) })
	return nil
}
func (l *oneConn) Addr() net.Addr { return l.addr }

var errTooLarge = errors.New("object larger than the policy's max_object")
