// Package hangup tells whether a client that waits for a verdict is still
// connected, without reading from its connection: the front is not reading
// while its job waits for the engine or runs, and a read would take bytes
// the client may already have sent for its next request.
//
// The gateway attaches a probe to each connection's context; the
// dispatcher polls it while the connection's job is in flight and drops
// the job when the client has gone (issue 16: a flood's clients that exit
// must not keep their queued and running scans).
package hangup

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

type key struct{}

// Probe reports whether the peer of one connection has gone.
type Probe struct {
	raw       syscall.RawConn
	halfClose bool
}

// With returns ctx carrying a probe of c. halfCloseGone says that a peer
// that shut down its sending side has gone too: true for protocols whose
// client never half-closes while it waits for an answer (ICAP, milter);
// false for clamd's protocol, where a client may send its request, shut
// down writing and then read the verdict. A connection that is not a
// socket gets no probe.
func With(ctx context.Context, c net.Conn, halfCloseGone bool) context.Context {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return ctx
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, key{}, &Probe{raw: raw, halfClose: halfCloseGone})
}

// From returns the probe ctx carries, or nil.
func From(ctx context.Context) *Probe {
	p, _ := ctx.Value(key{}).(*Probe)
	return p
}

// Gone reports whether the peer has closed its connection (a hang-up or
// an error on the socket; with halfCloseGone, also the end of its sending
// side). A zero-timeout poll: it never blocks.
func (p *Probe) Gone() bool {
	var revents int16
	err := p.raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			revents = fds[0].Revents
		}
	})
	if err != nil {
		return true // closed by the gateway itself: nobody will read a verdict
	}
	if revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
		return true
	}
	return p.halfClose && revents&unix.POLLRDHUP != 0
}
