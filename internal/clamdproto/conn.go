package clamdproto

import (
	"context"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// connReader reads a client connection with recvmsg, so that descriptors a
// client passes for FILDES are kept however the bytes around them were
// buffered; a plain read(2) would silently drop them. Every read refreshes
// the deadline, so a slow or silent client cannot hold a slot forever.
type connReader struct {
	ctx     context.Context
	conn    net.Conn
	uc      *net.UnixConn // nil for TCP
	timeout time.Duration
	oob     []byte
	fds     []*os.File
}

func newConnReader(ctx context.Context, conn net.Conn, timeout time.Duration) *connReader {
	cr := &connReader{ctx: ctx, conn: conn, timeout: timeout}
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
	if c.timeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	if c.uc == nil {
		return c.conn.Read(p)
	}
	n, oobn, _, _, err := c.uc.ReadMsgUnix(p, c.oob)
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
	for _, f := range c.fds {
		f.Close()
	}
	c.fds = nil
}
