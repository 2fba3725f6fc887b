package clamdproto

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// connReader reads a client connection with recvmsg, so that descriptors a
// client passes for FILDES are kept however the bytes around them were
// buffered; a plain read(2) would silently drop them. Every read refreshes
// the deadline, so a slow or silent client cannot hold a slot forever.
type connReader struct {
	ctx   context.Context
	drain context.Context
	idle  atomic.Bool // waiting for a command, not serving one
	// stopDrain unregisters from drain, which outlives every connection.
	stopDrain func() bool
	conn      net.Conn
	uc        *net.UnixConn // nil for TCP
	timeout   time.Duration
	oob       []byte
	fds       []*os.File
}

// errDraining ends an idle connection when the gateway shuts down.
var errDraining = errors.New("gateway shutting down")

func newConnReader(ctx, drain context.Context, conn net.Conn, timeout time.Duration) *connReader {
	cr := &connReader{ctx: ctx, drain: drain, conn: conn, timeout: timeout}
	cr.stopDrain = context.AfterFunc(drain, func() {
		if cr.idle.Load() {
			_ = conn.SetReadDeadline(time.Unix(1, 0))
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
	if c.idle.Load() && c.drain.Err() != nil {
		return 0, errDraining
	}
	if c.timeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	if c.uc == nil {
		n, err := c.conn.Read(p)
		return n, c.drainErr(err)
	}
	n, oobn, _, _, err := c.uc.ReadMsgUnix(p, c.oob)
	err = c.drainErr(err)
	n = max(n, 0) // recvmsg's -1 on error leaks through
	if oobn > 0 {
		c.keepRights(c.oob[:oobn])
	}
	return n, err
}

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
			unix.CloseOnExec(fd)
			c.fds = append(c.fds, os.NewFile(uintptr(fd), "fildes"))
		}
	}
}

// takeFD returns the oldest descriptor the client passed, or nil.
func (c *connReader) takeFD() *os.File {
	if len(c.fds) == 0 {
		return nil
	}
	f := c.fds[0]
	c.fds = c.fds[1:]
	return f
}

// close releases descriptors the client sent but never used.
func (c *connReader) close() {
	c.stopDrain()
	for _, f := range c.fds {
		f.Close()
	}
	c.fds = nil
}

// drainErr tells a read cut short by shutdown from a client's timeout.
func (c *connReader) drainErr(err error) error {
	if err != nil && c.idle.Load() && c.drain.Err() != nil {
		return errDraining
	}
	return err
}
