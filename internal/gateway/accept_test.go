package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/listen"
	"clamgate/internal/policy"
)

// failingListener returns the errors of its script in turn (nil: a
// connection), then net.ErrClosed.
type failingListener struct {
	net.Listener
	script []error
}

func (l *failingListener) Accept() (net.Conn, error) {
	if len(l.script) == 0 {
		return nil, net.ErrClosed
	}
	err := l.script[0]
	l.script = l.script[1:]
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: err}
	}
	a, b := net.Pipe()
	go func() { b.Close() }()
	return a, nil
}

func (l *failingListener) Close() error { return nil }

type closingFront struct{}

func (closingFront) ServeConn(_, _ context.Context, c net.Conn, _ *policy.Policy, _ policy.Peer) {}

// TestAcceptBackoff: accept errors (here EMFILE, as when the gateway runs
// out of descriptors) are retried after 5 ms doubling to 1 s, with one log
// line per streak; a successful accept starts the next streak afresh.
func TestAcceptBackoff(t *testing.T) {
	repeat := func(n int) []error {
		out := make([]error, n)
		for i := range out {
			out[i] = syscall.EMFILE
		}
		return out
	}
	script := append(append(repeat(12), nil), repeat(3)...)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := newServer(context.Background(), log, time.Second)
	var mu sync.Mutex
	var waits []time.Duration
	s.wait = func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() }
	l := &served{Listener: &failingListener{script: script}}
	l.route.Store(s.newRoute(config.Listener{Spec: listen.Spec{Address: "unix:/test"}}, &policy.Policy{Name: "t"}, closingFront{}))
	s.accept(l)
	s.conns.Wait()
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	want := append(ms(5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000), ms(5, 10, 20)...)
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if n := strings.Count(logs.String(), "accept failing"); n != 2 {
		t.Errorf("%d log lines for 2 streaks of 15 errors:\n%s", n, logs.String())
	}
}
