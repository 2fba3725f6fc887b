// Package clamd is a client of clamd's socket protocol. The gateway's
// dispatcher uses it as its backend, and `clamgate scan` uses it to talk to
// the gateway, which speaks the same protocol.
//
// Every request uses its own connection with NUL framing: clamd closes a
// non-session connection after each reply anyway, and a fresh connection per
// job means a job that fails cannot poison the next one.
package clamd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"clamgate/internal/addr"

	"golang.org/x/sys/unix"
)

// ChunkSize is the INSTREAM chunk the client sends; clamd's own clients use
// a few KiB, larger chunks cost fewer syscalls for the same memory bound.
const ChunkSize = 64 << 10

// maxReply bounds what is read back from clamd (STATS is the longest reply).
const maxReply = 1 << 20

// Client talks to one clamd (or one gateway) at Network/Address.
type Client struct {
	Network string // "unix" or "tcp" (also for TLS: see TLS)
	Address string
	// TLS: the address is "tls:…", and Dial does the handshake. Such a
	// backend is another clamgate: it takes no descriptors.
	TLS bool
	// Timeout bounds one whole exchange when the context has no deadline.
	Timeout time.Duration
	// PassStreams sends streams that are files (the dispatcher's spool) as
	// descriptors (FILDES): for a local clamd backend, not for a gateway.
	PassStreams bool
	// Dial connects; nil is a net.Dialer. doctor sets its own, so that its
	// checks can run against a fake host.
	Dial DialFunc
	bufs sync.Pool // *[]byte stream buffers
}

// New returns a client for "unix:/absolute/path" or "tcp:host:port"
// (internal/addr); "tls:host:port" needs NewTLS.
func New(address string, timeout time.Duration) (*Client, error) {
	a, err := addr.Parse(address)
	if err != nil {
		return nil, err
	}
	if a.Network == addr.TLS {
		return nil, fmt.Errorf("%s: a tls: backend needs its certificate, key and CA", address)
	}
	return &Client{Network: a.Network, Address: a.Address, Timeout: timeout}, nil
}

// DialFunc connects to address; for TLS it also completes the handshake.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// NewTLS returns a client for "tls:host:port" that connects with dial
// (internal/tlsid's Store.Dialer).
func NewTLS(address string, timeout time.Duration, dial DialFunc) (*Client, error) {
	a, err := addr.Parse(address)
	if err != nil {
		return nil, err
	}
	if a.Network != addr.TLS {
		return New(address, timeout)
	}
	if dial == nil {
		return nil, fmt.Errorf("%s: a tls: backend needs its certificate, key and CA", address)
	}
	return &Client{Network: a.Transport(), Address: a.Address, Timeout: timeout, TLS: true, Dial: dial}, nil
}

func (c *Client) String() string {
	if c.TLS {
		return addr.TLS + ":" + c.Address
	}
	return c.Network + ":" + c.Address
}

// UnavailableError means clamd could not be reached or dropped the
// exchange: the request was not scanned.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "clamd unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// DialError is a connection to clamd that could not be made: nothing
// listens on its socket, as opposed to a clamd that is slow to answer.
type DialError struct{ Err error }

func (e *DialError) Error() string { return e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// dial connects and ties the connection's lifetime to ctx (or to Timeout
// when ctx has no deadline), so that a cancelled job or a hung clamd never
// holds a goroutine forever.
func (c *Client) dial(ctx context.Context) (net.Conn, func(), error) {
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok && c.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, c.Network, c.Address)
	if err != nil {
		if ctx.Err() == nil { // checked before cancel, which would set it
			err = &DialError{err}
		}
		cancel()
		return nil, nil, &UnavailableError{err}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return conn, func() { stop(); conn.Close(); cancel() }, nil
}

// Command sends a plain command (PING, VERSION, STATS...) and returns
// clamd's reply without its terminator.
func (c *Client) Command(ctx context.Context, name string) (string, error) {
	conn, done, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	if _, err := conn.Write([]byte("z" + name + "\x00")); err != nil {
		return "", &UnavailableError{err}
	}
	reply, err := readReply(conn)
	if errors.Is(err, errNoReply) && closesSilently(name) {
		return "", nil
	}
	return reply, err
}

// closesSilently reports the commands clamd answers by closing the
// connection without a byte (checked against clamd 1.4.6: SHUTDOWN, its
// alias QUIT, DETSTATS and DETSTATSCLEAR). Any other command closed that
// way was dropped: a clamd dying during STATS must not read as an answer.
func closesSilently(name string) bool {
	switch name {
	case "SHUTDOWN", "QUIT", "DETSTATS", "DETSTATSCLEAR":
		return true
	}
	return false
}

// Instream streams r to clamd with INSTREAM and returns its verdict line.
// A read error from r aborts the scan and is returned as is, so the caller
// can tell a client's fault (oversize, hang-up) from clamd's.
func (c *Client) Instream(ctx context.Context, r io.Reader) (string, error) {
	if c.PassStreams && c.Network == "unix" {
		return c.instreamLocal(ctx, r)
	}
	return c.instream(ctx, r)
}

func (c *Client) instream(ctx context.Context, r io.Reader) (string, error) {
	// clamd is dialled only once the first data is in hand: a small stream
	// then reaches it in one write, and a slow client does not hold one of
	// clamd's threads while clamd waits for it.
	var conn net.Conn
	var done func()
	defer func() {
		if done != nil {
			done()
		}
	}()
	connect := func() (net.Conn, error) {
		if conn == nil {
			var err error
			if conn, done, err = c.dial(ctx); err != nil {
				return nil, err
			}
		}
		return conn, nil
	}
	if err := c.sendStream(connect, r); err != nil {
		var werr *writeError
		if errors.As(err, &werr) {
			// clamd stops reading when it refuses a stream (size limit);
			// its reply explains why, so prefer it to the write error.
			if reply, rerr := readReply(conn); rerr == nil {
				return reply, nil
			}
			return "", &UnavailableError{werr.err}
		}
		return "", err
	}
	return readReply(conn)
}

type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

const instreamCmd = "zINSTREAM\x00"

// sendStream writes the INSTREAM command, the chunks and the terminator in
// as few writes as the data allows: a small stream whose reader returns
// io.EOF with its data (as ChunkReader does when the client's terminator
// is already buffered) goes to clamd in a single write. Buffers are pooled:
// at thousands of small scans a second, allocating 64 KiB for each one
// costs more CPU than the copy itself.
func (c *Client) sendStream(connect func() (net.Conn, error), r io.Reader) error {
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, len(instreamCmd)+4+ChunkSize+4)
		bp = &b
	}
	defer c.bufs.Put(bp)
	buf := *bp
	head := copy(buf, instreamCmd)
	for {
		n, rerr := r.Read(buf[head+4 : head+4+ChunkSize])
		eof := errors.Is(rerr, io.EOF)
		if rerr != nil && !eof {
			return rerr
		}
		end := head
		if n > 0 {
			putLen(buf[end:], n)
			end += 4 + n
		}
		if eof {
			putLen(buf[end:], 0)
			end += 4
		}
		if end > 0 {
			conn, err := connect()
			if err != nil {
				return err
			}
			if _, err := conn.Write(buf[:end]); err != nil {
				return &writeError{err}
			}
		}
		if eof {
			return nil
		}
		head = 0
	}
}

func putLen(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

// Fildes hands f to clamd over a unix socket and returns its verdict line,
// which names the file "fd[N]".
func (c *Client) Fildes(ctx context.Context, f *os.File) (string, error) {
	if c.Network != "unix" {
		return "", &UnavailableError{fmt.Errorf("FILDES needs a unix socket, backend is %s", c)}
	}
	conn, done, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	uc := conn.(*net.UnixConn)
	if _, err := uc.Write([]byte("zFILDES\x00")); err != nil {
		return "", &UnavailableError{err}
	}
	if _, _, err := uc.WriteMsgUnix([]byte{0}, unix.UnixRights(int(f.Fd())), nil); err != nil {
		return "", &UnavailableError{err}
	}
	return readReply(conn)
}

// readReply reads up to the NUL terminator: every command is sent with the
// z prefix, and clamd ends every z-reply with a NUL. A reply cut off by a
// close before its NUL is not a reply (a clamd killed while writing, or a
// peer that is not clamd): "stream: OK" without it is no verdict. EOF
// before any byte means clamd dropped the request (crashed, killed,
// restarted), or answered one of the commands it closes silently.
func readReply(conn net.Conn) (string, error) {
	var out bytes.Buffer
	buf := make([]byte, 512) // verdicts are one short line; STATS loops
	for out.Len() < maxReply {
		n, err := conn.Read(buf)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			out.Write(buf[:i])
			return out.String(), nil
		}
		out.Write(buf[:n])
		if err != nil {
			return "", &UnavailableError{fmt.Errorf("reading reply: %w", eofText(err, out.Len()))}
		}
	}
	return "", &UnavailableError{errors.New("reply too long")}
}

var (
	errNoReply   = errors.New("connection closed without a reply")
	errTruncated = errors.New("connection closed before the reply's terminator")
)

func eofText(err error, got int) error {
	switch {
	case !errors.Is(err, io.EOF):
		return err
	case got > 0:
		return errTruncated
	}
	return errNoReply
}
