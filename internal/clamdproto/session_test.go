package clamdproto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"clamgate/internal/policy"
	"clamgate/internal/scan"

	"golang.org/x/sys/unix"
)

// versionDispatcher answers every command at once with a long reply, so
// that a session's unread replies pile up fast.
type versionDispatcher struct{}

func (versionDispatcher) Do(_ context.Context, job scan.Job) (scan.Result, error) {
	return scan.Result{Reply: "ClamAV 1.4.6/27000/" + strings.Repeat("x", 200)}, nil
}

// unixPair is a connected pair of unix stream sockets, the server's end as
// the *net.UnixConn the gateway accepts.
func unixPair(t *testing.T) (server, client *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// TestSessionUnreadBound: a client that writes a long session and never
// reads is not served past sessionBacklog of unread replies: the session
// ends with an ERROR the client can read, its writes are not blocked until
// a timeout, and the connection closes.
func TestSessionUnreadBound(t *testing.T) {
	server, client := unixPair(t)
	srv := &Server{Dispatcher: versionDispatcher{}, Log: slog.New(slog.DiscardHandler), ReadTimeout: time.Minute}
	pol := &policy.Policy{Name: "t", Commands: policy.DefaultCommands}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeConn(context.Background(), context.Background(), server, pol, policy.Peer{Listener: "test"})
		server.Close()
	}()
	// 20,000 commands whose replies (about 4.5 MB) far exceed what the
	// kernel and the gateway hold for a client that does not read.
	_ = client.SetDeadline(time.Now().Add(30 * time.Second))
	session := append([]byte("zIDSESSION\x00"), bytes.Repeat([]byte("zVERSION\x00"), 20000)...)
	_, werr := client.Write(session)
	if errors.Is(werr, os.ErrDeadlineExceeded) {
		t.Fatalf("the client's writes blocked until the deadline: %v", werr)
	}
	out, rerr := io.ReadAll(client)
	if rerr != nil && !errors.Is(rerr, unix.ECONNRESET) {
		t.Fatalf("read: %v", rerr)
	}
	replies := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	last := replies[len(replies)-1]
	if !strings.HasSuffix(last, ": Session ended: more than 65536 bytes of replies unread. ERROR") {
		t.Fatalf("last of %d replies: %q (write: %v)", len(replies), last, werr)
	}
	t.Logf("%d replies (%d bytes) before the end; write: %v", len(replies)-1, len(out), werr)
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end")
	}
}
