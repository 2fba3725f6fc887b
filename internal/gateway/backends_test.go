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
// fallback once the health checks take the primary out, come back to the
// primary once it answers again, and no scan ever gets a wrong verdict (an
// EICAR stream is FOUND or ERROR, never OK). Each phase waits on what the
// gateway logs it did and on scans counted, never on a sleep: a scan that
// starts after the primary was taken out, or after it came back, must not
// fail, whatever happens to the other backend.
func TestFailover(t *testing.T) {
	primary := testenv.StartClamd(t, testenv.ClamdOptions{})
	fallback := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := filepath.Join(testenv.TempDir(t), "gw.sock")
	g := testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
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
	l := newLoad(t, gw)
	defer l.stop()

	l.waitScans(t, 20)
	primary.Kill()
	waitLog(t, g, `taken out" backend=unix:`+primary.Socket)
	l.phase(1) // from here on scans go to the fallback
	l.waitScans(t, 50)
	primary.Restart()
	waitLog(t, g, `backend is back" backend=unix:`+primary.Socket)
	l.phase(2)          // the primary serves again: the fallback can go, once
	l.waitDrained(t, 1) // the scans it may still be running are done
	fallback.Kill()
	waitLog(t, g, `taken out" backend=unix:`+fallback.Socket)
	l.waitScans(t, 50)
	l.stop()
	for phase, what := range []string{1: "after the primary was taken out", 2: "after the primary came back"} {
		if n := l.failedIn(phase); phase > 0 && n > 0 {
			t.Errorf("%d scans started %s failed", n, what)
		}
	}
	t.Logf("%d scans, %d failed (fail closed, while the primary was dying), %d wrong", l.scans.Load(), l.failedIn(0), l.wrong.Load())
}

// load keeps four clients scanning clean and EICAR streams, counting
// failures by the phase in which each scan started.
type load struct {
	gw      *clamd.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	cur     atomic.Int32
	scans   atomic.Int64
	wrong   atomic.Int64
	failed  [3]atomic.Int64
	running [3]atomic.Int64 // scans in flight by the phase they started in
	inPhase atomic.Int64    // scans finished since the phase began
}

func newLoad(t *testing.T, gw *clamd.Client) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{gw: gw, cancel: cancel}
	for i := range 4 {
		l.wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				l.one(t, (n+i)%2 == 0)
			}
		})
	}
	return l
}

func (l *load) one(t *testing.T, infected bool) {
	phase := l.cur.Load()
	l.running[phase].Add(1)
	defer l.running[phase].Add(-1)
	data := "clean stream"
	if infected {
		data = testenv.EICAR
	}
	reply, err := l.gw.Instream(context.Background(), strings.NewReader(data))
	l.scans.Add(1)
	switch {
	case err != nil || strings.HasSuffix(reply, "ERROR"):
		l.failed[phase].Add(1)
	case infected != strings.HasSuffix(reply, "FOUND"):
		l.wrong.Add(1)
		t.Errorf("wrong verdict: infected=%v reply %q", infected, reply)
	}
	if l.cur.Load() == phase {
		l.inPhase.Add(1)
	}
}

func (l *load) phase(p int32) {
	l.cur.Store(p)
	l.inPhase.Store(0)
}

func (l *load) failedIn(p int) int64 { return l.failed[p].Load() }

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitScans waits until n scans have finished in the current phase.
func (l *load) waitScans(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); l.inPhase.Load() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d scans in a minute", l.inPhase.Load())
		}
	}
}

// waitDrained waits until no scan started in phase p is in flight.
func (l *load) waitDrained(t *testing.T, p int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); l.running[p].Load() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("scans of phase %d still running after a minute", p)
		}
	}
}

func waitLog(t *testing.T, g *testenv.Gateway, text string) {
	t.Helper()
	if err := g.Log.WaitFor(text, time.Minute); err != nil {
		t.Fatal(err)
	}
}
