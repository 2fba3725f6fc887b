package clamd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// engine is a scripted clamd whose behaviour a test switches between
// checks: answering, dropping every request, or not listening at all.
type engine struct {
	*fakeClamd
	drop atomic.Bool
}

func newEngine(t *testing.T) *engine {
	e := &engine{}
	e.fakeClamd = newFake(t, func(req request) answer {
		if e.drop.Load() {
			return answer{} // close without a reply, like a dying clamd
		}
		switch req.command {
		case "PING":
			return answer{write: []string{"PONG\x00"}}
		case "INSTREAM":
			return answer{write: []string{"stream: OK\x00"}}
		}
		return answer{write: []string{"ClamAV 1.4.6\x00"}}
	})
	return e
}

func (e *engine) set(state string) {
	e.drop.Store(state == "drop")
	e.setRefuse(state == "refuse")
}

// testPool is a pool over scripted engines; the last is the fallback when
// fallback is true.
func testPool(t *testing.T, fallback bool, engines ...*engine) *Pool {
	p := &Pool{log: slog.New(slog.NewTextHandler(io.Discard, nil)), interval: time.Hour, kick: make(chan struct{}, 1)}
	for i, e := range engines {
		m := &member{c: e.client("unix"), fallback: fallback && i == len(engines)-1}
		m.c.PassStreams = true
		m.up.Store(true)
		p.members = append(p.members, m)
	}
	return p
}

// TestPoolHealth walks one backend through the health checks' states: a
// backend that never answered is down at its first failure (starting up);
// one that answered goes down only after failuresToDown dropped checks in
// a row, or at once when nothing listens; any PONG brings it back. The
// checks are run one by one, so the test waits on no timer.
func TestPoolHealth(t *testing.T) {
	e := newEngine(t)
	p := testPool(t, false, e)
	m := p.members[0]
	steps := []struct {
		state string
		up    bool
		err   string // LastErr contains it
	}{
		{"drop", false, "without a reply"}, // never answered yet: starting up
		{"ok", true, ""},
		{"drop", true, ""},
		{"drop", true, ""},
		{"drop", false, "without a reply"}, // third in a row
		{"drop", false, ""},
		{"ok", true, ""},
		{"drop", true, ""}, // the count started again
		{"ok", true, ""},
		{"refuse", false, "connection refused"}, // nothing listens: at once
		{"ok", true, ""},
	}
	for i, s := range steps {
		e.set(s.state)
		p.check(context.Background(), m)
		st := p.States()[0]
		if st.Up != s.up || !strings.Contains(st.LastErr, s.err) {
			t.Fatalf("step %d (%s): up=%v lastErr=%q; want up=%v, error with %q", i, s.state, st.Up, st.LastErr, s.up, s.err)
		}
		if (p.Ready() == nil) != s.up {
			t.Fatalf("step %d: Ready() = %v with the only backend up=%v", i, p.Ready(), s.up)
		}
	}
}

// TestPoolWrongPong: a backend that answers PING with anything but PONG
// is not healthy.
func TestPoolWrongPong(t *testing.T) {
	f := newFake(t, says("PANG\x00"))
	p := &Pool{log: slog.New(slog.NewTextHandler(io.Discard, nil)), interval: time.Hour, kick: make(chan struct{}, 1)}
	p.members = []*member{{c: f.client("unix")}}
	p.check(context.Background(), p.members[0])
	if st := p.States()[0]; st.Up || !strings.Contains(st.LastErr, `"PANG"`) {
		t.Fatalf("state %+v, want down for PANG", st)
	}
}

// TestPoolFailover: jobs go to the primaries while one is up, to the
// fallback only when all are down, and back to the primary when it is.
func TestPoolFailover(t *testing.T) {
	primary, fallback := newEngine(t), newEngine(t)
	p := testPool(t, true, primary, fallback)
	scanned := func() (onPrimary, onFallback int) {
		before, beforeFB := len(primary.served()), len(fallback.served())
		if _, err := p.Instream(context.Background(), strings.NewReader("data")); err != nil {
			t.Fatal(err)
		}
		return len(primary.served()) - before, len(fallback.served()) - beforeFB
	}
	if a, b := scanned(); a != 1 || b != 0 {
		t.Fatalf("primary up: scans went %d/%d to primary/fallback", a, b)
	}
	primary.set("refuse")
	p.check(context.Background(), p.members[0])
	if a, b := scanned(); a != 0 || b != 1 {
		t.Fatalf("primary down: scans went %d/%d to primary/fallback", a, b)
	}
	primary.set("ok")
	p.check(context.Background(), p.members[0])
	if a, b := scanned(); a != 1 || b != 0 {
		t.Fatalf("primary back: scans went %d/%d to primary/fallback", a, b)
	}
}

// TestPoolKick: a job that cannot connect has the checker run at once,
// and the checker takes the backend out without waiting for its interval.
func TestPoolKick(t *testing.T) {
	e := newEngine(t)
	p := testPool(t, false, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	e.set("refuse")
	_, err := p.Instream(ctx, strings.NewReader("data"))
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a DialError", err)
	}
	deadline := time.Now().Add(10 * time.Second) // the interval is an hour
	for p.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the refused job did not have the backend checked")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPoolCommandRetry: a command that fails on one backend is sent once
// to another; a stream never is.
func TestPoolCommandRetry(t *testing.T) {
	a, b := newEngine(t), newEngine(t)
	p := testPool(t, false, a, b)
	a.set("drop")
	b.set("drop")
	for range 2 { // whichever the pool picks first fails
		got, err := p.Command(context.Background(), "VERSION")
		var ue *UnavailableError
		if !errors.As(err, &ue) || got != "" {
			t.Fatalf("both dropping: %q, %v", got, err)
		}
	}
	if n := len(a.served()) + len(b.served()); n != 4 {
		t.Fatalf("two commands reached the backends %d times, want 4 (each retried once)", n)
	}
	a.set("ok")
	for range 4 {
		if got, err := p.Command(context.Background(), "VERSION"); err != nil || got != "ClamAV 1.4.6" {
			t.Fatalf("one backend answering: %q, %v", got, err)
		}
	}
	before := len(a.served()) + len(b.served())
	_, _ = p.Instream(context.Background(), strings.NewReader("x"))
	_, _ = p.Instream(context.Background(), strings.NewReader("x"))
	if n := len(a.served()) + len(b.served()) - before; n != 2 {
		t.Fatalf("two streams reached the backends %d times, want 2 (never retried)", n)
	}
}
