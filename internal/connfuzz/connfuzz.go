// Package connfuzz is the fuzzing harness every protocol front shares: it
// feeds arbitrary client bytes to one connection of the front and fails if
// the front does not let go of it. It lives apart from testenv because the
// fronts' own tests cannot import testenv (which imports the gateway, which
// imports them).
package connfuzz

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"clamgate/internal/policy"
)

// Front is what the gateway asks of a protocol front.
type Front interface {
	ServeConn(ctx, drain context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer)
}

// Serve writes in to a fresh connection of front as a client would, then
// hangs up; the front must return within 5 s, whatever in was.
func Serve(t *testing.T, front Front, pol *policy.Policy, in []byte) {
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		front.ServeConn(context.Background(), context.Background(), server, pol, policy.Peer{Listener: "fuzz"})
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = client.Write(in)
	client.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("connection wedged on %q", in)
	}
}
