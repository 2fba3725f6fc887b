package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

// Bounds on one milter packet. libmilter refuses any packet larger than
// the data size negotiated (64 KiB unless the MTA offers 256 KiB or 1 MiB),
// so no MTA sends one; the slack is for macros and headers. Before
// negotiation the only packet is the 13-byte option negotiation.
const (
	maxFirstPacket = 1 << 10
	packetSlack    = 64 << 10
	// packetTimeout bounds the arrival of a packet's data once its length
	// has: an MTA writes each packet at once.
	packetTimeout = time.Minute
	// growStep is how much the packet buffer grows per read: a packet is
	// held only as far as its bytes have really arrived.
	growStep = 64 << 10
	// readAhead is the read buffer kept between the packets of a message:
	// a body chunk of the default data size and most of the next one, so
	// that a large mail takes about one and a half reads per packet
	// instead of three and a half (strace, 5 MiB mails). Between messages,
	// an idle connection keeps at most minRead.
	readAhead = 2 * growStep
	minRead   = 512
)

// errMalformed ends a connection whose peer sent what no MTA sends.
var errMalformed = errors.New("malformed milter packet")

// guard sits between the MTA's connection and the library. It reads each
// packet whole and checks it before the library parses it, because the
// library panics on some malformed packets (a panic in its connection
// goroutine would end the gateway) and allocates the length a packet
// announces before reading it. It also knows packet boundaries, so it is
// where a draining gateway closes a connection between messages, and where
// the time an MTA takes to send a message is charged.
type guard struct {
	net.Conn
	log    *slog.Logger
	in     []byte // bytes read from the MTA; in[r:] not yet made packets
	r      int
	pkt    []byte // the current packet, length prefix included
	off    int    // bytes of pkt already handed to the library
	closed chan struct{}
	once   sync.Once

	// body takes each body chunk straight from the packet buffer, and the
	// library gets an empty chunk instead: it allocates, clears and fills
	// a new buffer for every packet it reads, which for a large mail cost
	// more CPU than the rest of the milter's path.
	body func([]byte)

	maxPacket   int           // maxFirstPacket, then set by the negotiation
	libDeadline time.Time     // the library's own read deadline
	content     time.Duration // the message's content phase, charged per wait
	contentLeft time.Duration // of content; < 0 when no content phase runs

	mu       sync.Mutex
	busy     bool // a message is in progress or its reply not yet sent
	ending   bool // the message ended; its reply goes out before the next read
	draining bool
}

func newGuard(c net.Conn, log *slog.Logger, content time.Duration) *guard {
	return &guard{Conn: c, log: log, closed: make(chan struct{}), maxPacket: maxFirstPacket, content: content, contentLeft: -1}
}

// negotiated raises the packet bound to what the MTA and the library
// agreed, and from then on hands body chunks to body. Not before: the
// library calls Cleanup, which drops a message in progress and gives its
// spool back, only once negotiation has succeeded.
func (g *guard) negotiated(size uint32, body func([]byte)) {
	g.maxPacket = int(size) + packetSlack
	g.body = body
}

// SetReadDeadline records the library's deadline: the guard applies it,
// or an earlier one of its own, to each read.
func (g *guard) SetReadDeadline(t time.Time) error {
	g.libDeadline = t
	return nil
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
	g.pkt, g.off = nil, 0
	if g.r == len(g.in) {
		g.in, g.r = g.in[:0], 0
		if cap(g.in) > readAhead || cap(g.in) > minRead && !g.inMessage() {
			g.in = nil // kept neither between messages nor past readAhead
		}
	}
	if err := g.fill(4, time.Time{}); err != nil {
		if errors.Is(err, io.EOF) && len(g.in) > g.r {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	n := binary.BigEndian.Uint32(g.in[g.r:])
	if n == 0 || int64(n) > int64(g.maxPacket) {
		return g.malformed(fmt.Sprintf("packet length %d (at most %d here)", n, g.maxPacket))
	}
	want := 4 + int(n)
	if err := g.fill(want, time.Now().Add(packetTimeout)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	pkt := g.in[g.r : g.r+want]
	g.r += want
	if why := check(pkt[4], pkt[5:]); why != "" {
		return g.malformed(why)
	}
	g.track(pkt[4])
	if pkt[4] == 'B' && g.body != nil && len(pkt) > 5 {
		g.body(pkt[5:])
		pkt = emptyBody[:] // the library sees an empty body chunk
	}
	g.pkt = pkt
	return nil
}

// emptyBody is the body packet the library is handed once the guard has
// given the chunk to the session.
var emptyBody = [5]byte{0, 0, 0, 1, 'B'}

// fill reads until want bytes from g.r on have arrived, reading ahead as
// far as the buffer has room: the next packet's length, and often part of
// its data, come with the same read. The buffer grows only as far as bytes
// have really arrived, whatever length a packet announces.
func (g *guard) fill(want int, end time.Time) error {
	if g.r+want > cap(g.in) && g.r > 0 { // no room after the bytes kept: move them to the front
		g.in = g.in[:copy(g.in, g.in[g.r:])]
		g.r = 0
	}
	for len(g.in)-g.r < want {
		if len(g.in) == cap(g.in) {
			g.in = slices.Grow(g.in, g.growth(want))
		}
		m, err := g.read(g.in[len(g.in):cap(g.in)], end)
		g.in = g.in[:len(g.in)+m]
		if err != nil && len(g.in)-g.r < want {
			return err
		}
	}
	return nil
}

// growth is how much room to add to a full buffer to read want bytes from
// g.r on: as much as has arrived, doubling, up to want, so that a length
// announced allocates nothing by itself; at least minRead; and while a
// message is in progress, readAhead in all, for its body's packets.
func (g *guard) growth(want int) int {
	have := len(g.in) - g.r
	n := max(min(want-have, max(have, growStep)), minRead)
	if g.inMessage() {
		n = max(n, readAhead-len(g.in))
	}
	return n
}

func (g *guard) inMessage() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.busy
}

// read waits for the MTA until the earliest of the library's deadline, end
// and what is left of the message's content time, which every wait uses up.
func (g *guard) read(p []byte, end time.Time) (int, error) {
	deadline := g.libDeadline
	if !end.IsZero() && (deadline.IsZero() || end.Before(deadline)) {
		deadline = end
	}
	if g.contentLeft >= 0 {
		if g.contentLeft == 0 {
			g.log.Warn("milter connection closed: the MTA took too long to send the message", "limit", g.content)
			return 0, os.ErrDeadlineExceeded
		}
		if c := time.Now().Add(g.contentLeft); deadline.IsZero() || c.Before(deadline) {
			deadline = c
		}
	}
	_ = g.Conn.SetReadDeadline(deadline)
	start := time.Now()
	n, err := g.Conn.Read(p)
	if g.contentLeft >= 0 {
		g.contentLeft = max(0, g.contentLeft-time.Since(start))
	}
	return n, err
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
	// The content (headers and body) comes from the MTA's queue file, at
	// local speed: from its first packet to the end of the message the
	// MTA's pauses add up, and progress does not refill them. The wait
	// before it is the SMTP client's DATA, which the MTA itself times.
	switch {
	case (code == 'L' || code == 'N' || code == 'B') && g.contentLeft < 0 && g.content > 0:
		g.contentLeft = g.content
	case code == 'E' || code == 'A' || code == 'M':
		g.contentLeft = -1
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
