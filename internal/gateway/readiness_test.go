package gateway_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestNotReadyWithTestDatabase: the managed clamd on the built-in test
// database scans (EICAR is found), but /readyz stays 503 naming the test
// database, so that no load balancer or Kubernetes Service ever sends
// real traffic to it; /healthz is 200.
func TestNotReadyWithTestDatabase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the managed clamd runs as its own user: root needed")
	}
	dir := testenv.TempDir(t)
	httpAddr := testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[engine]
clamd = "/usr/sbin/clamd"
state_dir = "%s/state"
database = "test"
user = "%s"
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s/gw.sock"
policy = "test"
mode = "0666"
[policy.test]
`, dir, testenv.EngineUser(t, "cgeng-readytest"), httpAddr, dir)))
	gw, err := clamd.New("unix:"+dir+"/gw.sock", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		reply, err := gw.Instream(context.Background(), strings.NewReader(testenv.EICAR))
		if err == nil && strings.HasSuffix(reply, "FOUND") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the test database never answered EICAR: %q %v", reply, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Once the health check has seen clamd answer, the reason is the
	// database; it never turns 200.
	url := "http://" + httpAddr + "/readyz"
	for {
		code, body := status(t, url), get(t, url)
		if code == 200 {
			t.Fatalf("/readyz 200 with the test database: %q", body)
		}
		if code == 503 && strings.Contains(body, "built-in test database") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz with the test database: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if code := status(t, url); code != 503 {
		t.Errorf("/readyz with the test database: %d", code)
	}
	if code := status(t, "http://"+httpAddr+"/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
}

// TestNotReadyDuringFrugalHold: while a frugal reload holds the scans,
// /readyz is 503 (Kubernetes takes the pod out of its Service for the
// hold); before and after, 200. A scan precedes the change, so that clamd
// has a worker thread alive at the RELOAD, as it always has in service:
// with clamd's default IdleTimeout the reload then waits about 30 s for
// that thread to exit, which the 20 s bound on the new signature catches
// (it did under CPU load, when the test's first scan happened to reach
// clamd before the RELOAD).
func TestNotReadyDuringFrugalHold(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.FrugalClamd})
	dir := testenv.TempDir(t)
	httpAddr := testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
health_interval = "200ms"
[database]
dir = "%s"
reload = "frugal"
settle = "200ms"
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s/gw.sock"
policy = "test"
mode = "0666"
[policy.test]
`, c.Socket, c.DBDir, httpAddr, dir)))
	url := "http://" + httpAddr + "/readyz"
	waitStatus(t, url, 200)
	var held atomic.Int64
	var heldBody atomic.Value
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done }) // before the gateway stops, on failure too
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			// the reload's own answer, or the dispatcher's hold (the
			// managed clamd's start, another reload) where it is not given
			if body := get(t, url); strings.HasPrefix(body, "not ready: scans held") ||
				strings.HasPrefix(body, "not ready: reloading the database (frugal)") {
				held.Add(1)
				heldBody.Store(body)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	gw, err := clamd.New("unix:"+dir+"/gw.sock", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("CLAMGATE-READY-%d", time.Now().UnixNano())
	if reply, err := gw.Instream(context.Background(), strings.NewReader("clean, before the change")); err != nil || reply != "stream: OK" {
		t.Fatalf("before the change: %q %v", reply, err)
	}
	freshclamWrite(t, c.DBDir, "ready.ndb", fmt.Sprintf("Clamgate.Ready:0:*:%x\n", marker))
	deadline := time.Now().Add(20 * time.Second)
	served, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		reply, err := gw.Instream(served, strings.NewReader("x "+marker+" y"))
		if err == nil && strings.Contains(reply, "Clamgate.Ready.UNOFFICIAL FOUND") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new signature was never served: %q %v", reply, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	<-done
	t.Logf("/readyz polls answering held: %d (%v)", held.Load(), heldBody.Load())
	if held.Load() == 0 {
		t.Error("/readyz never said not ready during the frugal reload")
	}
	waitStatus(t, url, 200)
}
