package milter

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/connfuzz"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// drainDispatcher stands in for the engine in the fuzzer only: it consumes
// streams like clamd and answers clean, so the fuzzer exercises the front's
// own handling of whatever an MTA sends. The real engine is in every other
// test of this package.
type drainDispatcher struct{}

func (drainDispatcher) Do(ctx context.Context, job scan.Job) (scan.Result, error) {
	if _, err := io.Copy(io.Discard, job.Data); err != nil {
		return scan.Result{}, err
	}
	return scan.Result{Reply: "stream: OK", Verdict: scan.Clean}, ctx.Err()
}

// pkt frames one milter packet.
func pkt(code byte, data string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, code), data...)
}

func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// optneg is postfix's negotiation: protocol 6, every action, every step.
var optneg = pkt('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff")

// seeds are a whole transaction and the malformed packets that made the
// library panic before the guard existed.
var seeds = [][]byte{
	join(optneg, pkt('D', "Mi\x00Q1\x00"), pkt('M', "<a@b>\x00"), pkt('L', "Subject\x00hi\x00"), pkt('N', ""),
		pkt('B', "body\r\n"), pkt('E', ""), pkt('A', ""), pkt('Q', "")),
	join(optneg, pkt('C', "host\x004\x00\x19127.0.0.1\x00"), pkt('H', "helo\x00"), pkt('M', "<a@b>\x00"),
		pkt('R', "<c@d>\x00"), pkt('T', ""), pkt('B', "x"), pkt('E', ""), pkt('K', ""), pkt('E', "")),
	join(optneg, []byte{0, 0, 0, 0}),
	join(optneg, pkt('C', "no-nul")),
	join(optneg, pkt('C', "host\x00")),
	join(optneg, pkt('M', "<a@b>")),
	join(optneg, pkt('R', "<a@b>")),
	join(optneg, []byte{0x1f, 0xff, 0xff, 0xff, 'B'}),
	join(optneg, pkt('Z', "")),
	join(optneg, pkt('D', ""), pkt('D', "M"), pkt('L', "x"), pkt('U', "")),
	pkt('O', "\x00\x00\x00\x01"),
	pkt('E', ""),
	// the bounds: a first packet over 1 KiB, a packet over the negotiated
	// size, and one announced large and cut short
	append(binary.BigEndian.AppendUint32(nil, 2<<20), 'O'),
	join(optneg, binary.BigEndian.AppendUint32(nil, 1<<20), []byte("Bxx")),
	join(optneg, pkt('M', "<a@b>\x00"), binary.BigEndian.AppendUint32(nil, 60<<10), []byte("Lx")),
}

// FuzzGuard: whatever the peer sends, the guard hands on packets within
// the bound in force, and holds no more than one growth step beyond what
// arrived.
func FuzzGuard(f *testing.F) {
	for _, s := range seeds {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in []byte, negotiated bool) {
		a, b := net.Pipe()
		defer a.Close()
		g := newGuard(a, slog.New(slog.DiscardHandler), time.Second)
		tapped := 0
		if negotiated {
			g.negotiated(64<<10-1, func(p []byte) { tapped += len(p) })
		}
		go func() {
			b.Write(in)
			b.Close()
		}()
		buf := make([]byte, 4096)
		for {
			if _, err := g.Read(buf); err != nil {
				break
			}
			if len(g.pkt) > 4+g.maxPacket || cap(g.in) > 2*(len(in)+growStep) || tapped > len(in) {
				t.Fatalf("packet of %d bytes (buffer %d) over the bound %d, %d bytes sent, %d tapped", len(g.pkt), cap(g.in), g.maxPacket, len(in), tapped)
			}
		}
	})
}

func FuzzServeConn(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	srv := &Server{
		Dispatcher: drainDispatcher{}, Log: slog.New(slog.DiscardHandler), IdleTimeout: time.Second,
		Config: config.Milter{OnInfected: "quarantine", OnFailure: "tempfail", RejectMessage: config.DefaultRejectMessage,
			AddHeader: true, MaxSize: 1 << 16, OverLimit: "reject"},
	}
	pol := &policy.Policy{Name: "fuzz", MaxStream: 1 << 20}
	f.Fuzz(func(t *testing.T, in []byte) { connfuzz.Serve(t, srv, pol, in) })
}
