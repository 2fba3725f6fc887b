package hangup

import (
	"context"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"
)

// TestWatcher runs on synctest's clock: a watched connection whose peer
// stays is left alone, one whose peer closes is cancelled with ErrGone
// within one period, and the watcher's goroutine ends once nothing is in
// flight (a later Add starts it again).
func TestWatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w Watcher
		a, peer := socketPair(t)
		ctx, stop := With(context.Background(), a, false)
		defer stop()
		p := w.Add(ctx)
		time.Sleep(5 * DefaultEvery)
		if ctx.Err() != nil || !w.isRunning() {
			t.Fatalf("peer connected: ctx %v, running %v", ctx.Err(), w.isRunning())
		}
		peer.Close()
		time.Sleep(DefaultEvery)
		synctest.Wait()
		if context.Cause(ctx) != ErrGone {
			t.Fatalf("peer closed: cause %v, want ErrGone", context.Cause(ctx))
		}
		w.Remove(p)
		time.Sleep(DefaultEvery)
		synctest.Wait()
		if w.isRunning() {
			t.Fatal("the watcher still runs with nothing in flight")
		}
		b, _ := socketPair(t)
		ctx2, stop2 := With(context.Background(), b, false)
		defer stop2()
		p2 := w.Add(ctx2)
		if !w.isRunning() {
			t.Fatal("a new job did not start the watcher")
		}
		w.Remove(p2)
		time.Sleep(DefaultEvery) // the bubble ends only once the watcher has
	})
}

// TestHalfClose: a peer that shuts down its sending side has gone only
// for the protocols that say so.
func TestHalfClose(t *testing.T) {
	for _, half := range []bool{false, true} {
		a, peer := socketPair(t)
		ctx, stop := With(context.Background(), a, half)
		defer stop()
		_ = peer.(*net.UnixConn).CloseWrite()
		if got := From(ctx).Gone(); got != half {
			t.Errorf("halfCloseGone=%v: Gone() = %v after the peer's shutdown(SHUT_WR)", half, got)
		}
	}
}

// TestNoProbe: a connection that is not a socket gets no probe, and the
// watcher ignores it.
func TestNoProbe(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, stop := With(context.Background(), a, true)
	defer stop()
	var w Watcher
	if p := w.Add(ctx); p != nil || w.isRunning() {
		t.Fatalf("net.Pipe got a probe %v", p)
	}
}

func (w *Watcher) isRunning() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}
