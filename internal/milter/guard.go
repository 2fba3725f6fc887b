package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
)

// maxPacket bounds one milter packet. The largest data size MTAs negotiate
// is 1 MiB, and they cap a header far below that (postfix's
// header_size_limit is 100 KiB), so anything larger is not an MTA.
const maxPacket = 2 << 20

// errMalformed ends a connection whose peer sent what no MTA sends.
var errMalformed = errors.New("malformed milter packet")

// guard sits between the MTA's connection and the library. It reads each
// packet whole and checks it before the library parses it, because the
// library panics on some malformed packets (a panic in its connection
// goroutine would end the gateway). It also knows packet boundaries, so it
// is where a draining gateway closes a connection between messages.
type guard struct {
	net.Conn
	log    *slog.Logger
	pkt    []byte // the current packet, length prefix included
	off    int    // bytes of pkt already handed to the library
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	busy     bool // a message is in progress or its reply not yet sent
	ending   bool // the message ended; its reply goes out before the next read
	draining bool
}

func newGuard(c net.Conn, log *slog.Logger) *guard {
	return &guard{Conn: c, log: log, closed: make(chan struct{})}
}

func (g *guard) Read(p []byte) (int, error) {
	if g.off >= len(g.pkt) {
		if g.stopHere() {
			return 0, io.EOF // quietly: the MTA reconnects to the next gateway
		}
		if err := g.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, g.pkt[g.off:])
	g.off += n
	return n, nil
}

// next reads and checks one whole packet.
func (g *guard) next() error {
	g.pkt, g.off = g.pkt[:0], 0
	var hdr [4]byte
	if _, err := io.ReadFull(g.Conn, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxPacket {
		return g.malformed(fmt.Sprintf("packet length %d", n))
	}
	g.pkt = slices.Grow(g.pkt, 4+int(n))[:4+int(n)]
	copy(g.pkt, hdr[:])
	if _, err := io.ReadFull(g.Conn, g.pkt[4:]); err != nil {
		g.pkt = g.pkt[:0]
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if why := check(g.pkt[4], g.pkt[5:]); why != "" {
		g.pkt = g.pkt[:0]
		return g.malformed(why)
	}
	g.track(g.pkt[4])
	return nil
}

func (g *guard) malformed(why string) error {
	g.log.Warn("milter connection closed: malformed packet", "reason", why)
	return errMalformed
}

// check rejects unknown commands and the shapes the library cannot parse
// safely: a connect or envelope address without its NUL terminator.
func check(code byte, data []byte) string {
	switch code {
	case 'O', 'D', 'Q', 'H', 'L', 'N', 'B', 'E', 'A', 'T', 'K', 'U':
		return ""
	case 'C':
		if i := bytes.IndexByte(data, 0); i < 0 || i+1 >= len(data) {
			return "connect packet without host and family"
		}
	case 'M', 'R':
		if bytes.IndexByte(data, 0) < 0 {
			return "envelope address without NUL"
		}
	default:
		return fmt.Sprintf("unknown command %q", code)
	}
	return ""
}

// track follows the message in progress, which a draining gateway lets
// finish. After its end the connection stays busy until the library has
// written the reply and comes back for the next packet.
func (g *guard) track(code byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch code {
	case 'M', 'L', 'N', 'B':
		g.busy, g.ending = true, false
	case 'E', 'A':
		g.ending = true
	}
}

// stopHere is called at a packet boundary: the previous reply is out.
func (g *guard) stopHere() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ending {
		g.busy, g.ending = false, false
	}
	return g.draining && !g.busy
}

// drain closes the connection now if it is idle, else after its message.
func (g *guard) drain() {
	g.mu.Lock()
	g.draining = true
	idle := !g.busy
	g.mu.Unlock()
	if idle {
		g.kill()
	}
}

// kill unblocks whatever the session waits for on the connection.
func (g *guard) kill() { _ = g.Conn.Close() }

func (g *guard) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.Conn.Close()
}
