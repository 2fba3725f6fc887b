package gateway_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestReloadOnUpdate updates the database the way freshclam does (a file
// written in a tmp directory, then renamed into place) while clients scan
// without pause: the new signature must be served within 15 s, and no scan
// may fail or be refused during the reload. reload = "auto" with an
// external clamd (this one runs ConcurrentDatabaseReload no) must hold
// requests as frugal does, and say so in STATS.
func TestReloadOnUpdate(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.FrugalClamd})
	dir := testenv.TempDir(t)
	sock := filepath.Join(dir, "gw.sock")
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
[database]
dir = "%s"
reload = "auto"
settle = "300ms"
[[listener]]
address = "unix:%s"
policy = "test"
mode = "0666"
[policy.test]
`, c.Socket, c.DBDir, sock)))
	gw, err := clamd.New("unix:"+sock, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	load := startLoad(ctx, gw, 4)

	marker := fmt.Sprintf("CLAMGATE-FRESH-%d", time.Now().UnixNano())
	time.Sleep(500 * time.Millisecond)
	updated := time.Now()
	freshclamWrite(t, c.DBDir, "fresh.ndb", fmt.Sprintf("Clamgate.Fresh:0:*:%x\n", marker))
	for {
		reply, err := gw.Instream(context.Background(), strings.NewReader("x "+marker+" y"))
		if err == nil && strings.Contains(reply, "Clamgate.Fresh.UNOFFICIAL FOUND") {
			break
		}
		if time.Since(updated) > 15*time.Second {
			t.Fatalf("new signature not served 15 s after the update: %q %v", reply, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	served := time.Since(updated)
	time.Sleep(300 * time.Millisecond)
	stop()
	n, failed, slowest := load.wait()
	t.Logf("new signature served %v after the update; %d scans during the test, %d failed, slowest %v", served.Round(time.Millisecond), n, failed, slowest.Round(time.Millisecond))
	if failed > 0 {
		t.Errorf("%d scans failed during the reload: %s", failed, load.firstErr.Load())
	}
	stats, err := gw.Command(context.Background(), "STATS")
	if err != nil || !strings.Contains(stats, "DATABASE: dir "+c.DBDir) || !strings.Contains(stats, " reload frugal (external)\n") || !strings.HasSuffix(stats, "END") {
		t.Errorf("STATS without the database line: %q %v", stats, err)
	}
}

// freshclamWrite puts a database file in place as freshclam does: written
// in full under a temporary directory, then renamed.
func freshclamWrite(t *testing.T, dbDir, name, content string) {
	t.Helper()
	tmp, err := os.MkdirTemp(dbDir, "tmp.")
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(tmp, name)
	if err := os.WriteFile(part, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a download takes a while
	if err := os.Rename(part, filepath.Join(dbDir, name)); err != nil {
		t.Fatal(err)
	}
	os.Remove(tmp)
}

type loadGen struct {
	wg       sync.WaitGroup
	n, fail  atomic.Int64
	slowest  atomic.Int64
	firstErr atomic.Value
}

// startLoad keeps workers scanning clean streams through gw until ctx ends.
func startLoad(ctx context.Context, gw *clamd.Client, workers int) *loadGen {
	l := &loadGen{}
	for range workers {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				reply, err := gw.Instream(context.Background(), strings.NewReader("clean data for the load generator"))
				if d := int64(time.Since(start)); d > l.slowest.Load() {
					l.slowest.Store(d)
				}
				l.n.Add(1)
				if err != nil || reply != "stream: OK" {
					l.fail.Add(1)
					l.firstErr.CompareAndSwap(nil, fmt.Sprintf("%q %v", reply, err))
				}
			}
		})
	}
	return l
}

func (l *loadGen) wait() (n, failed int64, slowest time.Duration) {
	l.wg.Wait()
	return l.n.Load(), l.fail.Load(), time.Duration(l.slowest.Load())
}
