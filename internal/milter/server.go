// Package milter is the gateway's mail filter front: postfix and sendmail
// hand it each message over the milter protocol, it keeps the message
// (headers as received, then the body) as it arrives, scans it at its end
// as one job, and answers with the configured action, as clamav-milter
// does, so that clamav-milter and the clamd it needs can be retired.
//
// The protocol is spoken by github.com/d--j/go-milter rather than by hand:
// milter is undocumented outside sendmail's and libmilter's sources, and
// that library implements version 6 (negotiation, no-reply steps, progress,
// quarantine) and is tested by its authors against postfix and sendmail.
// It only serves whole listeners, so each gateway connection is handed to
// it as a one-connection listener. Its packet reader trusts the peer (a
// zero length or a missing NUL panics, a length allocates up to 512 MiB),
// so every packet passes through this package's guard first.
package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/policy"
	"clamgate/internal/scan"

	gomilter "github.com/d--j/go-milter"
)

// Dispatcher runs scan jobs; it is the front's only way to the engine.
type Dispatcher interface {
	Do(ctx context.Context, job scan.Job) (scan.Result, error)
}

// Server is the milter front. One Server serves every milter listener;
// its zero buffer pool is ready to use.
type Server struct {
	Dispatcher Dispatcher
	Log        *slog.Logger
	Config     config.Milter
	// IdleTimeout bounds the wait for the MTA's next packet. The MTA keeps
	// the connection for a whole SMTP session and is silent while its
	// client sends recipients and data, so it must be long; 0 means 1 h.
	IdleTimeout time.Duration
	// ContentTimeout bounds the time the MTA may take, in all, to send a
	// message's headers and body; 0 means 5 min, postfix's
	// milter_content_timeout and sendmail's T:E.
	ContentTimeout time.Duration
	// Hostname names this host in X-Virus-Scanned; "" = os.Hostname().
	Hostname string
	// Spool is the gateway's spool budget, from which every byte of a
	// message is reserved before it is kept; nil = no bound.
	Spool *scan.SpoolBudget
	// SpoolDir holds messages larger than a buffer until they have been
	// scanned ("" = $TMPDIR).
	SpoolDir string

	bufs     sync.Pool // *[]byte message buffers
	hostOnce sync.Once
	host     string
}

const (
	defaultIdleTimeout    = time.Hour
	defaultContentTimeout = 5 * time.Minute
)

// ServeConn serves one MTA connection, admitted by the gateway, until it
// ends (a refused one is closed unread: milter has no way to say why
// before negotiation, and the MTA applies its milter_default_action). drain ends when the
// gateway stops accepting: the connection closes as soon as no message is
// in progress. ctx ends when running work must be aborted.
func (s *Server) ServeConn(ctx, drain context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer) {
	g := newGuard(c, s.Log.With("client", pol.Name, "peer", peer.String()), s.contentTimeout())
	defer g.Close()
	stopAbort := context.AfterFunc(ctx, g.kill)
	defer stopAbort()
	stopDrain := context.AfterFunc(drain, g.drain)
	defer stopDrain()

	sess := &session{srv: s, ctx: ctx, pol: pol, peer: peer, limit: pol.Limit(s.Config.MaxSize), guard: g}
	ms := gomilter.NewServer(
		gomilter.WithMilter(func() gomilter.Milter { return sess }),
		gomilter.WithNegotiationCallback(sess.negotiate),
		gomilter.WithReadTimeout(s.idleTimeout()),
	)
	_ = ms.Serve(&oneConnListener{conn: g, done: g.closed})
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return defaultIdleTimeout
}

func (s *Server) contentTimeout() time.Duration {
	if s.ContentTimeout > 0 {
		return s.ContentTimeout
	}
	return defaultContentTimeout
}

func (s *Server) hostname() string {
	s.hostOnce.Do(func() {
		s.host = s.Hostname
		if s.host == "" {
			s.host, _ = os.Hostname()
		}
	})
	return s.host
}

// oneConnListener hands the library a single connection, then blocks
// until that connection is closed, so that Serve returns when the
// session ends.
type oneConnListener struct {
	conn  net.Conn
	done  <-chan struct{}
	taken atomic.Bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if l.taken.CompareAndSwap(false, true) {
		return l.conn, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

// errNegotiation is returned to the library when the MTA cannot do what
// the configuration needs; the MTA then applies its default action.
var errNegotiation = errors.New("milter: MTA does not offer a needed action")

// RouteLibraryLog sends go-milter's own warnings, which it prints through
// Go's standard log package by default, to the gateway's log. The hook is
// the library's package variable: the process sets it once, at start.
func RouteLibraryLog(log *slog.Logger) {
	gomilter.LogWarning = func(format string, v ...any) {
		log.Warn("milter library: " + fmt.Sprintf(format, v...))
	}
}
