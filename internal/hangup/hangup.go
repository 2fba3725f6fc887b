// Package hangup tells whether a client that waits for a verdict is still
// connected, without reading from its connection: the front is not reading
// while its job waits for the engine or runs, and a read would take bytes
// the client may already have sent for its next request.
//
// The gateway attaches a probe to each connection's context (With); the
// dispatcher's one Watcher polls the probes of the connections that have a
// job in flight and cancels a connection's context with ErrGone when its
// client has gone (issue 16: a flood's clients that exit must not keep
// their queued and running scans). A job pays a map insert and delete for
// this, not a goroutine and a timer of its own (issue 30).
package hangup

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrGone is the cause of a connection's cancellation when its client has
// disconnected.
var ErrGone = errors.New("the client has gone")

type key struct{}

// Probe reports whether the peer of one connection has gone.
type Probe struct {
	raw       syscall.RawConn
	halfClose bool
	cancel    context.CancelCauseFunc
}

// With returns ctx carrying a probe of c, cancelled with ErrGone when a
// Watcher finds the peer gone; stop releases it when the connection ends.
// halfCloseGone says that a peer that shut down its sending side has gone
// too: true for protocols whose client never half-closes while it waits
// for an answer (ICAP, milter); false for clamd's protocol, where a client
// may send its request, shut down writing and then read the verdict. A
// connection that is not a socket gets no probe.
func With(ctx context.Context, c net.Conn, halfCloseGone bool) (_ context.Context, stop func()) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return ctx, func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	p := &Probe{raw: raw, halfClose: halfCloseGone, cancel: cancel}
	return context.WithValue(ctx, key{}, p), func() { cancel(nil) }
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

// DefaultEvery is how often a Watcher polls the connections it watches.
const DefaultEvery = 100 * time.Millisecond

// Watcher polls the probes of the connections that have a job in flight,
// from one goroutine that runs only while there is one. A job shorter
// than one period is never polled at all.
type Watcher struct {
	Every time.Duration // 0 = DefaultEvery

	mu      sync.Mutex
	probes  map[*Probe]int // jobs in flight per connection
	running bool
}

// Add watches the connection ctx belongs to until the matching Remove,
// and returns its probe (nil, and nothing watched, when ctx carries none).
func (w *Watcher) Add(ctx context.Context) *Probe {
	p := From(ctx)
	if p == nil {
		return nil
	}
	w.mu.Lock()
	if w.probes == nil {
		w.probes = make(map[*Probe]int)
	}
	w.probes[p]++
	if !w.running {
		w.running = true
		go w.run()
	}
	w.mu.Unlock()
	return p
}

// Remove ends one Add of p; nil is ignored.
func (w *Watcher) Remove(p *Probe) {
	if p == nil {
		return
	}
	w.mu.Lock()
	if w.probes[p]--; w.probes[p] <= 0 {
		delete(w.probes, p)
	}
	w.mu.Unlock()
}

// run polls until a tick finds nothing to watch.
func (w *Watcher) run() {
	every := w.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var batch []*Probe
	for range t.C {
		w.mu.Lock()
		if len(w.probes) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		batch = batch[:0]
		for p := range w.probes {
			batch = append(batch, p)
		}
		w.mu.Unlock()
		for _, p := range batch { // polled outside the lock: jobs come and go meanwhile
			if p.Gone() {
				p.cancel(ErrGone)
			}
		}
	}
}
