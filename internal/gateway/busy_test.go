package gateway_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestQueueOverflow fills the engine's only slot and the client's queue:
// the next scan gets a clamd-style busy ERROR at once, and the queued one
// still gets its verdict when the slot frees.
func TestQueueOverflow(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := filepath.Join(testenv.TempDir(t), "gw.sock")
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
max_jobs = 1
reserve = 0
[[listener]]
address = "unix:%s"
policy = "test"
mode = "0666"
[policy.test]
max_queue = 1
`, c.Socket, sock)))
	gw, _ := clamd.New("unix:"+sock, 30*time.Second)
	slow, feed := io.Pipe()
	first := make(chan string, 1)
	go func() {
		reply, err := gw.Instream(context.Background(), slow)
		first <- fmt.Sprint(reply, err)
	}()
	feed.Write([]byte("slow stream holds the only slot"))
	time.Sleep(200 * time.Millisecond)
	queued := make(chan string, 1)
	go func() {
		reply, err := gw.Instream(context.Background(), strings.NewReader(testenv.EICAR))
		queued <- fmt.Sprint(reply, err)
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	reply, err := gw.Instream(context.Background(), strings.NewReader("one too many"))
	if err != nil || !strings.HasPrefix(reply, "stream: gateway busy: ") || !strings.HasSuffix(reply, " ERROR") || time.Since(start) > time.Second {
		t.Fatalf("overflow: %q %v after %v", reply, err, time.Since(start))
	}
	feed.Close()
	if got := <-first; got != "stream: OK<nil>" {
		t.Errorf("slow stream: %s", got)
	}
	if got := <-queued; !strings.Contains(got, "FOUND") {
		t.Errorf("queued EICAR: %s", got)
	}
}
