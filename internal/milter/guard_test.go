package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/policy"
)

// TestGuardPacketBounds: the guard refuses a packet longer than the
// negotiation allows before reading any of it, and holds an accepted one
// only as far as its bytes have arrived.
func TestGuardPacketBounds(t *testing.T) {
	for _, tc := range []struct {
		name       string
		negotiated uint32 // 0: not yet
	}{{"2 MiB before negotiation", 0}, {"2 MiB after a 64 KiB negotiation", 64<<10 - 1}} {
		t.Run(tc.name, func(t *testing.T) {
			g, mtaSide := pipeGuard(t)
			if tc.negotiated > 0 {
				g.negotiated(tc.negotiated, nil)
			}
			go mtaSide.Write(binary.BigEndian.AppendUint32(nil, 2<<20))
			if _, err := g.Read(make([]byte, 4)); !errors.Is(err, errMalformed) {
				t.Fatalf("%v, want refused", err)
			}
		})
	}
	t.Run("allocated as it arrives", func(t *testing.T) {
		g, mtaSide := pipeGuard(t)
		g.negotiated(1<<20-1, nil)
		go func() {
			mtaSide.Write(append(binary.BigEndian.AppendUint32(nil, 1<<20), 'B'))
			mtaSide.Write(make([]byte, 100))
			mtaSide.Close() // and the rest never comes
		}()
		if _, err := g.Read(make([]byte, 4)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated packet: %v", err)
		}
		if cap(g.in) > readAhead { // the read buffer, not the length announced
			t.Errorf("%d bytes held for 105 received", cap(g.in))
		}
	})
}

// TestGuardContentTimeout: an MTA that sends a message's headers one every
// 200 ms refreshes the idle timeout forever, but not the content time.
// The 60 s is a liveness bound, not a measurement.
func TestGuardContentTimeout(t *testing.T) {
	srv := &Server{Dispatcher: drainDispatcher{}, Log: slog.New(slog.DiscardHandler), IdleTimeout: 10 * time.Second,
		ContentTimeout: time.Second, Config: config.Milter{OnInfected: "reject", OnFailure: "tempfail",
			RejectMessage: config.DefaultRejectMessage, OverLimit: "reject"}}
	mtaSide, gwSide := net.Pipe()
	defer mtaSide.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeConn(t.Context(), t.Context(), gwSide, &policy.Policy{Name: "t", MaxStream: 1 << 20}, policy.Peer{})
	}()
	go io.Copy(io.Discard, mtaSide)
	mtaSide.Write(join(optneg, pkt('M', "<a@b>\x00")))
	limit := time.After(60 * time.Second)
	for {
		select {
		case <-done:
			return
		case <-limit:
			t.Fatal("a trickling MTA still holds its connection after 60 s")
		case <-time.After(200 * time.Millisecond):
			mtaSide.SetWriteDeadline(time.Now().Add(time.Second))
			mtaSide.Write(pkt('L', "X-Slow\x00y\x00"))
		}
	}
}

func pipeGuard(t *testing.T) (*guard, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return newGuard(a, slog.New(slog.DiscardHandler), time.Minute), b
}

// TestGuardBodyTap: body chunks go to the session straight from the
// guard's buffer, in order and whole, while the library is handed an
// empty body packet for each; other packets pass unchanged; the packets
// the MTA wrote back to back come in fewer reads than packets; and once
// the message is over, the connection keeps no large buffer.
func TestGuardBodyTap(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	reads := &countingConn{Conn: a}
	g := newGuard(reads, slog.New(slog.DiscardHandler), time.Minute)
	var got []byte
	g.negotiated(64<<10-1, func(p []byte) { got = append(got, p...) })
	chunks := [][]byte{bytes.Repeat([]byte("a"), 64<<10-1), bytes.Repeat([]byte("b"), 100), bytes.Repeat([]byte("c"), 64<<10-1)}
	stream := pkt('M', "<a@b>\x00")
	for _, c := range chunks {
		stream = append(stream, pkt('B', string(c))...)
	}
	stream = append(stream, pkt('E', "")...)
	go func() {
		b.Write(stream)
		b.Write(pkt('Q', "")) // after the reply, the next thing on the connection
	}()
	if code, data := libraryPacket(t, g); code != 'M' || string(data) != "<a@b>\x00" {
		t.Fatalf("first packet %q %q", code, data)
	}
	for i := range chunks {
		if code, data := libraryPacket(t, g); code != 'B' || len(data) != 0 {
			t.Fatalf("body packet %d reached the library as %q with %d bytes, want an empty body chunk", i, code, len(data))
		}
	}
	if code, _ := libraryPacket(t, g); code != 'E' {
		t.Fatalf("end of message: %q", code)
	}
	if want := bytes.Join(chunks, nil); !bytes.Equal(got, want) {
		t.Errorf("the session got %d bytes, want the %d of the chunks in order", len(got), len(want))
	}
	// net.Pipe hands over at most what each read asks for: with the
	// read-ahead, a packet's length comes with the previous packet's data.
	if packets := len(chunks) + 2; reads.n >= 2*packets {
		t.Errorf("%d reads for %d packets", reads.n, packets)
	}
	if code, _ := libraryPacket(t, g); code != 'Q' {
		t.Fatalf("after the message: %q", code)
	}
	if cap(g.in) > minRead {
		t.Errorf("%d bytes of read buffer kept after the message", cap(g.in))
	}
}

// libraryPacket reads one packet from g as the library does.
func libraryPacket(t *testing.T, g *guard) (byte, []byte) {
	t.Helper()
	var n uint32
	if err := binary.Read(g, binary.BigEndian, &n); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(g, data); err != nil {
		t.Fatal(err)
	}
	return data[0], data[1:]
}

type countingConn struct {
	net.Conn
	n int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.n++
	return c.Conn.Read(p)
}
