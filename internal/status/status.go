// Package status serves the gateway's operational endpoints on loopback
// (/metrics, /healthz, /readyz) and tells systemd when the gateway is ready,
// alive and stopping.
//
// /healthz and /readyz answer different questions on purpose: healthz says
// the process still serves HTTP (restart it if not), readyz says it can give
// verdicts now (a backend answers and a database is loaded), so that a
// balancer or a deploy script waits instead of sending mail into errors.
// The listener is loopback-only by default because the endpoints have no
// authentication and the metrics name clients and backends.
package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"clamgate/internal/addr"
	"clamgate/internal/listen"

	"golang.org/x/net/netutil"
)

// Server is the status HTTP server.
type Server struct {
	Addr             string // "tcp:host:port"
	AllowNonLoopback bool
	// MaxConnections bounds the connections served at once (0: 16); the
	// next ones wait in the kernel's accept backlog, where they cost the
	// gateway no descriptor.
	MaxConnections int
	Metrics        http.Handler // served at /metrics; nil serves none
	// Ready reports whether the gateway can scan; nil error is ready, and a
	// nil func means always ready. It runs on every /readyz request, so it
	// should read state the gateway already keeps rather than probe clamd.
	Ready func() error
	Log   *slog.Logger
}

// defaultMaxConnections is far more than scrapers and health checks need
// and far less than the descriptors the scan listeners need.
const defaultMaxConnections = 16

// shutdownGrace bounds how long a scrape in flight may delay shutdown.
const shutdownGrace = 5 * time.Second

// Run listens on Addr and serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	l, err := s.Listen(ctx)
	if err != nil {
		return err
	}
	return s.Serve(ctx, l)
}

// Listen opens Addr after the same loopback check as the scan listeners. It
// is separate from Serve so that the caller (or a test) can bind port 0 and
// learn the port, or fail at startup before anything else is started.
func (s *Server) Listen(ctx context.Context) (net.Listener, error) {
	a, err := addr.Parse(s.Addr)
	if err != nil || a.Network != addr.TCP {
		return nil, fmt.Errorf("status address %q: want tcp:host:port", s.Addr)
	}
	if err := listen.CheckTCP(a.Address, s.AllowNonLoopback); err != nil {
		return nil, fmt.Errorf("status address: %w", err)
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", a.Address)
}

// Serve serves on l until ctx ends; it closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := s.httpServer(ctx)
	l = netutil.LimitListener(l, s.maxConnections())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	s.logger().Info("status endpoints listening", "address", l.Addr().String())
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// httpServer sets every timeout: a stuck scraper or a slowloris on the
// status port must not accumulate goroutines in a gateway whose point is
// bounded resources. Together with the connection limit they bound what the
// status port can cost: MaxConnections descriptors, goroutines and header
// buffers, each freed within the timeouts.
func (s *Server) httpServer(ctx context.Context) *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		// A held idle connection keeps a slot of MaxConnections.
		IdleTimeout:    15 * time.Second,
		MaxHeaderBytes: 16 << 10,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		ErrorLog:       slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
}

func (s *Server) maxConnections() int {
	if s.MaxConnections > 0 {
		return s.MaxConnections
	}
	return defaultMaxConnections
}

// Handler routes the status endpoints; Serve uses it, and it can be mounted
// elsewhere.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(); err != nil {
			plain(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	plain(w, http.StatusOK, "ready")
}

func plain(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, text)
}

func (s *Server) logger() *slog.Logger { return orDiscard(s.Log) }
