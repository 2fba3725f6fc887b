package status

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// notifySocket plays systemd: a unixgram socket named by NOTIFY_SOCKET.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

// next returns the next datagram containing want, or "" after timeout.
func next(t *testing.T, c *net.UnixConn, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		if msg := string(buf[:n]); strings.Contains(msg, want) {
			return msg
		}
	}
}

func TestNotifyReadyAndStopping(t *testing.T) {
	c := notifySocket(t)
	if !NotifyReady(nil) {
		t.Fatal("NotifyReady = false with NOTIFY_SOCKET set")
	}
	if msg := next(t, c, "READY=1", time.Second); !strings.Contains(msg, "STATUS=") {
		t.Errorf("ready datagram %q, want READY=1 with a STATUS", msg)
	}
	NotifyStopping()
	if next(t, c, "STOPPING=1", time.Second) == "" {
		t.Error("no STOPPING=1")
	}
}

func TestNotifyOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	if NotifyReady(nil) {
		t.Error("NotifyReady = true without NOTIFY_SOCKET")
	}
	done := make(chan struct{})
	go func() { Watchdog(context.Background(), nil, nil); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Error("Watchdog without WATCHDOG_USEC did not return at once")
	}
}

func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	c := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "100000") // 100 ms: pings every 50 ms
	var sick atomic.Pointer[error]
	healthy := func() error {
		if p := sick.Load(); p != nil {
			return *p
		}
		return nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { Watchdog(ctx, healthy, nil); close(done) }()

	if next(t, c, "WATCHDOG=1", time.Second) == "" {
		t.Fatal("no WATCHDOG=1 while healthy")
	}
	wedged := errors.New("dispatcher stuck\nfor 2m")
	sick.Store(&wedged)
	if msg := next(t, c, "STATUS=unhealthy", time.Second); strings.Count(msg, "\n") > 0 {
		t.Errorf("status %q: an error's newline must not become a new assignment", msg)
	}
	// Pings already sent before the flip may still be queued; after them,
	// silence for several intervals.
	time.Sleep(120 * time.Millisecond)
	drain(c)
	if msg := next(t, c, "WATCHDOG=1", 300*time.Millisecond); msg != "" {
		t.Errorf("watchdog pinged while unhealthy: %q", msg)
	}
	sick.Store(nil)
	if next(t, c, "WATCHDOG=1", time.Second) == "" {
		t.Error("no WATCHDOG=1 after recovering")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Error("Watchdog did not return when ctx ended")
	}
}

func drain(c *net.UnixConn) {
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
