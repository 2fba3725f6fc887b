// Package icap is the gateway's ICAP front (RFC 3507): squid, or any ICAP
// client, sends it REQMOD/RESPMOD requests, and it scans the encapsulated
// bodies through the dispatcher like every other client.
//
// It is written by hand because there is no maintained Go ICAP server: the
// original go-icap is abandoned and its forks mishandle Preview, which is
// the part that matters most here (ieof, 100 Continue, 204 inside and
// outside the preview). The protocol is small; the parsing is bounded and
// fuzzed.
package icap

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/listen"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// Dispatcher runs scan jobs; it is the front's only way to the engine.
type Dispatcher interface {
	Do(ctx context.Context, job scan.Job) (scan.Result, error)
}

// Server serves ICAP connections.
type Server struct {
	Dispatcher Dispatcher
	Log        *slog.Logger
	// ReadTimeout bounds each wait for client bytes, and each write.
	ReadTimeout time.Duration
	Settings    config.ICAP
	// Tag, when set, gives the ISTag: it changes with the signature
	// database. Without it the tag follows clamd's VERSION reply.
	Tag func() string
	// Spool is the gateway's spool budget, which bodies kept for the echo
	// reserve from; nil = no bound.
	Spool *scan.SpoolBudget

	mu    sync.Mutex
	open  map[string]int // connections per listener, for Max-Connections
	tag   string         // ISTag, from the engine's VERSION
	tagAt time.Time
}

// conn is one client connection.
type conn struct {
	srv  *Server
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	pol  *policy.Policy
	peer policy.Peer
}

// ServeConn serves one connection until the client closes it, drain ends
// while it is idle, or ctx ends.
func (s *Server) ServeConn(ctx, drain context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	dc := &deadlineConn{Conn: c, timeout: s.ReadTimeout}
	cn := &conn{srv: s, c: c, r: bufio.NewReaderSize(dc, 64<<10), w: bufio.NewWriterSize(dc, 32<<10), pol: pol, peer: peer}
	if !s.admit(peer.Listener) {
		s.Log.Warn("icap: too many connections", "listener", peer.Listener, "max", s.Settings.MaxConnections)
		if cn.respond().status(503) == nil {
			cn.linger() // the request may be on its way: a reset would destroy the 503
		}
		return
	}
	defer s.release(peer.Listener)
	var idle atomic.Bool
	stopDrain := context.AfterFunc(drain, func() {
		if idle.Load() {
			c.Close()
		}
	})
	defer stopDrain()
	for {
		idle.Store(true)
		if drain.Err() != nil {
			return
		}
		// Between requests only the idle timeout applies; from a request's
		// first byte on, the client has RequestTimeout in all to send it.
		_, err := cn.r.Peek(1)
		idle.Store(false)
		dc.startRequest(s.Settings.RequestTimeout)
		var req *Request
		if err == nil {
			req, err = readRequest(cn.r)
		}
		if err != nil {
			cn.readFailed(err)
			return
		}
		if !cn.handle(ctx, req) {
			cn.linger()
			return
		}
		if req.closeConn {
			return
		}
	}
}

// Refuse answers a client the gateway did not admit with 403, before
// reading its request, then drains what it sends so the answer is read.
func (s *Server) Refuse(ctx context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer, why error) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s.Log.Warn("request refused", "client", pol.Name, "peer", peer.String(), "protocol", "icap", "reason", why.Error())
	dc := &deadlineConn{Conn: c, timeout: s.ReadTimeout}
	cn := &conn{srv: s, c: c, w: bufio.NewWriterSize(dc, 4<<10), pol: pol, peer: peer}
	if cn.respond().status(403) == nil {
		cn.linger()
	}
}

// unaskedPreview is the preview accepted from a client that did not ask
// OPTIONS for one (clients commonly send 1024 or 4096 bytes).
const unaskedPreview = 4 << 10

// maxPreview bounds the preview a client may send: it is held in memory
// whole, so a client announcing gigabytes must not be believed.
func (s *Server) maxPreview() int { return max(s.Settings.Preview, unaskedPreview) }

// Bounds on reading what a client still sends after its final answer.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 16 << 20
)

// linger lets a client that is still sending (a body the answer did not
// need) read that answer.
func (cn *conn) linger() { listen.Linger(cn.c, lingerTime, lingerBytes) }

func (s *Server) admit(listener string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = map[string]int{}
	}
	if s.Settings.MaxConnections > 0 && s.open[listener] >= s.Settings.MaxConnections {
		return false
	}
	s.open[listener]++
	return true
}

func (s *Server) release(listener string) {
	s.mu.Lock()
	s.open[listener]--
	s.mu.Unlock()
}

// readFailed answers a request that could not be read, when there is
// still someone to answer.
func (cn *conn) readFailed(err error) {
	var se *statusError
	switch {
	case errors.As(err, &se):
		cn.srv.Log.Warn("icap: bad request", "client", cn.pol.Name, "peer", cn.peer.String(), "status", se.code, "err", se.msg)
		cn.respond().status(se.code)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case isTimeout(err):
		cn.srv.Log.Warn("icap: client too slow", "client", cn.pol.Name, "peer", cn.peer.String())
		cn.respond().status(408)
	default:
		cn.srv.Log.Debug("icap: connection ended", "client", cn.pol.Name, "peer", cn.peer.String(), "err", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (cn *conn) respond() *response {
	return &response{w: cn.w, istag: cn.srv.cachedTag()}
}

// handle answers one request; false means the connection cannot carry
// another one (the body was not read to its end, or the write failed).
func (cn *conn) handle(ctx context.Context, req *Request) bool {
	switch {
	case req.Service != cn.srv.Settings.Service:
		cn.srv.Log.Warn("icap: unknown service", "client", cn.pol.Name, "uri", req.URI)
		return cn.respond().status(404) == nil && !req.HasBody
	case req.Method == "OPTIONS":
		return cn.options(ctx, req)
	case req.Method == "REQMOD" || req.Method == "RESPMOD":
		return cn.modify(ctx, req)
	}
	return cn.respond().status(501) == nil && !req.HasBody
}

func (cn *conn) options(ctx context.Context, req *Request) bool {
	if req.HasBody { // opt-body: nothing defined for it here, but read it to stay in step
		if _, err := io.Copy(io.Discard, newChunkReader(cn.r)); err != nil {
			cn.readFailed(err)
			return false
		}
	}
	st := cn.srv.Settings
	r := &response{w: cn.w, istag: cn.srv.refreshTag(ctx, cn.pol.Name)}
	r.set("Methods", "RESPMOD, REQMOD")
	r.set("Service", "clamgate ICAP antivirus")
	r.set("Service-ID", "clamgate")
	r.set("Max-Connections", strconv.Itoa(st.MaxConnections))
	r.set("Options-TTL", strconv.Itoa(int(st.OptionsTTL.Seconds())))
	r.set("Allow", "204")
	if st.Preview > 0 {
		r.set("Preview", strconv.Itoa(st.Preview))
	}
	for _, h := range [][2]string{{"Transfer-Preview", st.TransferPreview}, {"Transfer-Ignore", st.TransferIgnore}, {"Transfer-Complete", st.TransferComplete}} {
		if h[1] != "" {
			r.set(h[0], h[1])
		}
	}
	return r.status(200) == nil
}

// cachedTag is the last ISTag seen; responses other than OPTIONS use it
// rather than asking the engine on every request.
func (s *Server) cachedTag() string {
	if s.Tag != nil {
		if t := s.Tag(); t != "" {
			return t
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tag == "" {
		return `"clamgate-0"`
	}
	return s.tag
}

// refreshTag derives ISTag from the engine's VERSION, which names the
// signature database version: a new database is a new tag, so clients drop
// verdicts they cached under the old one.
func (s *Server) refreshTag(ctx context.Context, client string) string {
	if s.Tag != nil {
		if t := s.Tag(); t != "" {
			return t
		}
	}
	s.mu.Lock()
	fresh := time.Since(s.tagAt) < 5*time.Second
	s.mu.Unlock()
	if !fresh {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := s.Dispatcher.Do(ctx, scan.Job{Client: client, Protocol: "icap", Kind: scan.Command, Command: "VERSION"})
		s.mu.Lock()
		s.tagAt = time.Now() // a failed engine is asked again only after the same pause
		if err == nil && res.Reply != "" {
			sum := sha256.Sum256([]byte(res.Reply))
			s.tag = fmt.Sprintf(`"CG-%s"`, hex.EncodeToString(sum[:8]))
		}
		s.mu.Unlock()
	}
	return s.cachedTag()
}

// deadlineConn gives every read and write its own deadline, so that a slow
// client cannot hold a connection (or a scan slot) forever; during a
// request, the time spent waiting for the client's bytes is also charged to
// a total that progress does not refill, so trickling does not help either.
// Only waits count: time the gateway spends scanning is not the client's.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	left    time.Duration // of the request's total; meaningful when counting
	count   bool
}

// startRequest starts charging reads to a total of d (0: no total).
func (d *deadlineConn) startRequest(total time.Duration) { d.left, d.count = total, total > 0 }

func (d *deadlineConn) Read(p []byte) (int, error) {
	wait := d.timeout
	if d.count {
		if d.left <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		if wait <= 0 || d.left < wait {
			wait = d.left
		}
	}
	if wait > 0 {
		d.Conn.SetReadDeadline(time.Now().Add(wait))
	}
	start := time.Now()
	n, err := d.Conn.Read(p)
	if d.count {
		d.left -= time.Since(start)
	}
	return n, err
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.timeout > 0 {
		d.Conn.SetWriteDeadline(time.Now().Add(d.timeout))
	}
	return d.Conn.Write(p)
}
