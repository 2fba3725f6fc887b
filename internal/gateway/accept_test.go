package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/clamdproto"
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
	l.route.Store(s.newRoute(config.Listener{Address: "unix:/test"}, []*policy.Policy{{Name: "t"}}, closingFront{}, nil))
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

// wrappedListener hands out its connections wrapped, as something the
// gateway cannot ask the kernel about.
type wrappedListener struct{ net.Listener }

type wrappedConn struct{ net.Conn }

func (l wrappedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedConn{c}, nil
}

// TestUnverifiedPeerRefused: a client on a unix socket whose credentials
// the gateway cannot read is refused, even by a policy open to every local
// user (it used to be admitted as if it came over TCP), and the refusal
// reaches it in clamd's words.
func TestUnverifiedPeerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.sock")
	ln, err := listen.Listen(listen.Spec{Address: "unix:" + path, Mode: 0o600, UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	s := newServer(ctx, log, time.Second)
	front := &clamdproto.Server{Log: log, ReadTimeout: 5 * time.Second}
	s.add(wrappedListener{ln}, s.newRoute(config.Listener{Address: "unix:" + path, MaxConnections: 4},
		[]*policy.Policy{{Name: "open", Commands: policy.DefaultCommands}}, front, nil))
	done := make(chan struct{})
	go func() { s.serve(); close(done) }()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write([]byte("zPING\x00"))
	got, err := io.ReadAll(c)
	if want := "Access denied (peer credentials could not be read). ERROR\x00"; err != nil || string(got) != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
}
