package gateway_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestFailover kills the primary clamd under load: scans move to the
// fallback within a health interval, come back to the primary once it
// answers again, and no scan ever gets a wrong verdict (an EICAR stream
// is FOUND or ERROR, never OK).
func TestFailover(t *testing.T) {
	primary := testenv.StartClamd(t, testenv.ClamdOptions{})
	fallback := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := filepath.Join(testenv.TempDir(t), "gw.sock")
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = ["unix:%s"]
fallback = "unix:%s"
health_interval = "200ms"
timeout = "10s"
[[listener]]
address = "unix:%s"
policy = "test"
mode = "0666"
[policy.test]
`, primary.Socket, fallback.Socket, sock)))
	gw, _ := clamd.New("unix:"+sock, 10*time.Second)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var scans, failed, wrong atomic.Int64
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				infected := (n+i)%2 == 0
				data := "clean stream"
				if infected {
					data = testenv.EICAR
				}
				reply, err := gw.Instream(context.Background(), strings.NewReader(data))
				scans.Add(1)
				switch {
				case err != nil || strings.HasSuffix(reply, "ERROR"):
					failed.Add(1)
				case infected != strings.HasSuffix(reply, "FOUND"):
					wrong.Add(1)
					t.Errorf("wrong verdict: infected=%v reply %q", infected, reply)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	primary.Kill()
	time.Sleep(time.Second)
	failedAtKill := failed.Load()
	time.Sleep(time.Second)
	if failed.Load() != failedAtKill {
		t.Errorf("scans still failing a second after the fallback took over: %d more", failed.Load()-failedAtKill)
	}
	primary.Restart()
	time.Sleep(time.Second) // health checks put it back
	fallback.Kill()
	time.Sleep(time.Second)
	failedAtSwitch := failed.Load()
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	if failed.Load() != failedAtSwitch {
		t.Errorf("primary not back in service: %d scans failed after the fallback went down", failed.Load()-failedAtSwitch)
	}
	t.Logf("%d scans, %d failed (fail closed, while a backend died), %d wrong", scans.Load(), failed.Load(), wrong.Load())
}
