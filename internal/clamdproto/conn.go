package clamdproto

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"

	"clamgate/internal/listen"

	"golang.org/x/sys/unix"
)

// connReader reads a client connection with recvmsg, so that descriptors a
// client passes for FILDES are kept however the bytes around them were
// buffered; a plain read(2) would silently drop them. Every read refreshes
// the deadline, so a silent client cannot hold a slot forever, and a
// request in progress also has a total deadline (until) that progress does
// not move, so a client sending a byte a second cannot either.
//
// It keeps at most one descriptor: the one a FILDES command is about to
// take. Any other is closed as soon as it arrives, so a client cannot make
// the gateway hold descriptors (they ride with any byte, and arrive before
// the command they belong to is parsed).
type connReader struct {
	ctx   context.Context
	drain context.Context
	idle  atomic.Bool // waiting for a command, not serving one
	heard atomic.Bool // the client has sent a byte
	// stopDrain unregisters from drain, which outlives every connection.
	stopDrain func() bool
	conn      net.Conn
	uc        *net.UnixConn // nil for TCP
	timeout   time.Duration
	budget    time.Duration // total time of the request being read, from its next read; 0: none
	until     time.Time     // when the budget runs out; zero until the request's first read
	oob       []byte
	fd        *os.File // the descriptor for a FILDES, or nil
}

// errDraining ends an idle connection when the gateway shuts down.
var errDraining = errors.New("gateway shutting down")

// drainWait is how long a connection that has sent nothing yet gets, once
// the gateway drains, for its first command: a client that connected as
// the shutdown began (systemd's socket hands the next ones to the next
// process) has its request served, not its connection closed unanswered.
const drainWait = 200 * time.Millisecond

// drainDeadline is when an idle connection's wait ends once the gateway
// drains: at once, unless the client's command is already there or it
// has not sent anything yet.
func (c *connReader) drainDeadline() time.Time {
	if !c.heard.Load() || listen.Unread(c.conn) {
		return time.Now().Add(drainWait)
	}
	return time.Unix(1, 0)
}

func newConnReader(ctx, drain context.Context, conn net.Conn, timeout time.Duration) *connReader {
	cr := &connReader{ctx: ctx, drain: drain, conn: conn, timeout: timeout}
	cr.stopDrain = context.AfterFunc(drain, func() {
		if cr.idle.Load() {
			_ = conn.SetReadDeadline(cr.drainDeadline())
		}
	})
	if uc, ok := conn.(*net.UnixConn); ok {
		cr.uc = uc
		cr.oob = make([]byte, unix.CmsgSpace(4*8))
	}
	return cr
}

func (c *connReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	d := c.deadline()
	if c.idle.Load() && c.drain.Err() != nil {
		drain := c.drainDeadline()
		if drain.Before(time.Now()) {
			return 0, errDraining
		}
		if d.IsZero() || drain.Before(d) {
			d = drain
		}
	}
	if !d.IsZero() {
		_ = c.conn.SetReadDeadline(d)
	}
	if c.uc == nil {
		n, err := c.conn.Read(p)
		if n > 0 {
			c.heard.Store(true)
		}
		return n, c.drainErr(err)
	}
	n, oobn, _, _, err := c.uc.ReadMsgUnix(p, c.oob)
	err = c.drainErr(err)
	n = max(n, 0) // recvmsg's -1 on error leaks through
	if n > 0 {
		c.heard.Store(true)
	}
	if oobn > 0 {
		c.keepRights(c.oob[:oobn])
	}
	return n, err
}

// deadline is when the current read must end: the per-read timeout, or
// the request's total deadline if that comes first. The total runs from
// the request's first read, so that time a stream spends waiting for the
// engine before the gateway reads it is not charged to the client.
func (c *connReader) deadline() time.Time {
	if c.budget > 0 && c.until.IsZero() {
		c.until = time.Now().Add(c.budget)
	}
	var d time.Time
	if c.timeout > 0 {
		d = time.Now().Add(c.timeout)
	}
	if !c.until.IsZero() && (d.IsZero() || c.until.Before(d)) {
		d = c.until
	}
	return d
}

// limit gives the request about to be read a total time of d (0: none).
func (c *connReader) limit(d time.Duration) {
	c.budget, c.until = d, time.Time{}
}

// keepRights keeps the first descriptor of the message if none is held,
// and closes every other at once.
func (c *connReader) keepRights(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if c.fd != nil {
				unix.Close(fd)
				continue
			}
			unix.CloseOnExec(fd)
			c.fd = os.NewFile(uintptr(fd), "fildes")
		}
	}
}

// takeFD returns the descriptor the client passed, or nil.
func (c *connReader) takeFD() *os.File {
	f := c.fd
	c.fd = nil
	return f
}

// dropFD closes a descriptor no FILDES asked for.
func (c *connReader) dropFD() {
	if c.fd != nil {
		c.fd.Close()
		c.fd = nil
	}
}

// close releases a descriptor the client sent but never used.
func (c *connReader) close() {
	c.stopDrain()
	c.dropFD()
}

// drainErr tells a read cut short by shutdown from a client's timeout.
func (c *connReader) drainErr(err error) error {
	if err != nil && c.idle.Load() && c.drain.Err() != nil {
		return errDraining
	}
	return err
}
