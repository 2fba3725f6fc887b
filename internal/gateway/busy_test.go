package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestQueueOverflow fills the engine's only scan slot (with a slow scan:
// a stream still arriving holds none) and the client's queue: the next
// scan gets a clamd-style busy ERROR at once, naming the limit and its
// policy key, and the queued one still gets its verdict when the slot
// frees.
func TestQueueOverflow(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{MaxThreads: 2, SlowSignatures: slowSignatures, StreamMaxLength: "40M"})
	sock := filepath.Join(testenv.TempDir(t), "gw.sock")
	httpAddr := testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
max_jobs = 2
reserve = 0
stream_max_length = "40M"
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s"
policy = "test"
mode = "0666"
[policy.test]
max_queue = 1
`, c.Socket, httpAddr, sock)))
	base := "http://" + httpAddr
	gw, _ := clamd.New("unix:"+sock, time.Minute)
	first := make(chan string, 1)
	go func() {
		reply, err := gw.Instream(context.Background(), bytes.NewReader(randomData(32<<20, 4)))
		first <- fmt.Sprint(reply, err)
	}()
	waitScanning(t, c)
	queued := make(chan string, 1)
	go func() {
		reply, err := gw.Instream(context.Background(), strings.NewReader(testenv.EICAR))
		queued <- fmt.Sprint(reply, err)
	}()
	waitSeries(t, base, `clamgate_queue_depth{client="test"}`, 1)
	reply, err := gw.Instream(context.Background(), strings.NewReader("one too many"))
	if err != nil || !strings.HasPrefix(reply, "stream: gateway busy: ") || !strings.Contains(reply, "policy.test.max_queue = 1") || !strings.HasSuffix(reply, " ERROR") {
		t.Fatalf("overflow: %q %v", reply, err)
	}
	if got := <-first; got != "stream: OK<nil>" {
		t.Errorf("slow stream: %s", got)
	}
	if got := <-queued; !strings.Contains(got, "FOUND") {
		t.Errorf("queued EICAR: %s", got)
	}
}

// TestTurnAwayReadable: a connection turned away (its uid or its listener
// at the bound) reads the busy reply and then EOF, never a reset, even
// while 250 more turned-away connections sit idle: the gateway drains what
// the client sent before it closes.
func TestTurnAwayReadable(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	for _, tc := range []struct{ name, listener, want string }{
		{"per uid", "max_connections = 600\nmax_connections_per_uid = 4", "gateway busy: too many connections from uid 0. ERROR\n"},
		{"per listener", "max_connections = 4\nmax_connections_per_uid = 8", "gateway busy: too many connections. ERROR\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := attackGateway(t, c, "", tc.listener, "")
			for range 4 + 250 { // the four served, then 250 idle over the bound
				conn, err := net.Dial("unix", sock)
				must(t, err)
				defer conn.Close()
			}
			for i := range 20 {
				conn, err := net.Dial("unix", sock)
				must(t, err)
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = conn.Write([]byte("zPING\x00"))
				got, err := io.ReadAll(conn)
				conn.Close()
				if err != nil || string(got) != tc.want {
					t.Fatalf("client %d reading to EOF: %q, %v; want %q and EOF", i, got, err, tc.want)
				}
			}
		})
	}
}
