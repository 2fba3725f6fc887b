package gateway_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// failedClosed asserts that a reply is an error and in no way a verdict of
// clean: this is what a client must see whenever clamd could not scan.
func failedClosed(t *testing.T, what string, reply []byte) {
	t.Helper()
	s := string(reply)
	if !strings.HasSuffix(strings.TrimRight(s, "\x00\n"), "ERROR") || strings.Contains(s, "OK") {
		t.Errorf("%s: %q, want an ERROR reply and never OK", what, s)
	}
}

// TestFailClosed: with clamd down, hung or killed mid-scan, clients get
// ERROR, never OK, and the gateway serves again once clamd is back.
func TestFailClosed(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{SlowSignatures: 60000})
	tr := makeTree(t)
	gw, _ := gatewayFor(t, clamd, fmt.Sprintf("roots = [%q]", tr.Root))

	clamd.Kill()
	failedClosed(t, "INSTREAM with clamd down", exchange(t, "unix", gw, step{Data: instream("z", []byte("clean"))}))
	failedClosed(t, "SCAN with clamd down", exchange(t, "unix", gw, raw("zSCAN "+tr.path("clean.txt")+"\x00")))
	failedClosed(t, "CONTSCAN tree with clamd down", exchange(t, "unix", gw, raw("zCONTSCAN "+tr.path("cleandir")+"\x00")))
	failedClosed(t, "PING with clamd down", exchange(t, "unix", gw, raw("zPING\x00")))

	clamd.Restart()
	if got := zask(t, gw, "SCAN "+tr.path("eicar.com")); got != tr.path("eicar.com")+": "+testenv.EicarThreat+" FOUND\x00" {
		t.Fatalf("after restart: %q", got)
	}

	// The gateway spools a stream whole before it reaches clamd, so a kill
	// while the client is still sending only repeats "clamd down". This
	// kills clamd while clamd itself is scanning the stream: the slow
	// signatures keep it busy for seconds, and clamd's own STATS says when
	// the scan is in flight.
	t.Run("killed during a scan", func(t *testing.T) {
		data := make([]byte, 9<<20) // under the 10M limit; a second or more of scanning
		rand.Read(data)             // unique: clamd caches clean verdicts
		var parts [][]byte
		for p := data; len(p) > 0; p = p[min(len(p), 64<<10):] {
			parts = append(parts, p[:min(len(p), 64<<10)])
		}
		got := make(chan []byte, 1)
		go func() { got <- ask("unix", gw, instream("z", parts...)) }()
		waitScanning(t, clamd)
		clamd.Kill()
		reply := <-got
		t.Logf("client got %q", reply)
		failedClosed(t, "INSTREAM with clamd killed during its scan", reply)
		clamd.Restart()
	})

	t.Run("hung clamd", func(t *testing.T) {
		hungGW := gatewayWithTimeout(t, clamd, "2s")
		pid := clamd.PID()
		must(t, syscall.Kill(pid, syscall.SIGSTOP))
		defer syscall.Kill(pid, syscall.SIGCONT)
		got := exchange(t, "unix", hungGW, step{Data: instream("z", []byte("clean"))})
		failedClosed(t, "INSTREAM with clamd stopped", got)
		if !strings.Contains(string(got), "timed out") {
			t.Errorf("reply does not say the scan timed out: %q", got)
		}
	})
}

// ask sends req and returns all the server answers; unlike exchange it
// never fails the test, so it may run on a goroutine of its own.
func ask(network, addr string, req []byte) []byte {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return []byte(err.Error())
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	go c.Write(req)
	out, _ := io.ReadAll(c)
	return out
}

func gatewayWithTimeout(t *testing.T, c *testenv.Clamd, timeout string) string {
	t.Helper()
	dir := testenv.TempDir(t)
	sock := dir + "/gw.sock"
	cfg := mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = %q
[[listener]]
address = "unix:%s"
policy = "p"
[policy.p]
`, c.Socket, timeout, sock))
	testenv.StartGateway(t, cfg)
	return sock
}

// TestGracefulShutdown: on shutdown, idle connections close at once, new
// ones are refused, and a scan in progress still gets its verdict.
func TestGracefulShutdown(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	sock := dir + "/gw.sock"
	g := testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
[server]
shutdown_grace = "20s"
[[listener]]
address = "unix:%s"
policy = "p"
[policy.p]
`, clamd.Socket, sock)))
	idle, err := net.Dial("unix", sock)
	must(t, err)
	defer idle.Close()
	busy, err := net.Dial("unix", sock)
	must(t, err)
	defer busy.Close()
	_, err = busy.Write(append([]byte("zINSTREAM\x00"), chunk([]byte(testenv.EICAR[:20]))...))
	must(t, err)
	time.Sleep(100 * time.Millisecond) // the gateway is streaming it to clamd

	stopped := make(chan struct{})
	go func() { g.Stop(); close(stopped) }()
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := idle.Read(make([]byte, 64)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("idle connection during shutdown: read %d, %v; want it closed", n, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections during shutdown")
		}
	}
	_, err = busy.Write(append(chunk([]byte(testenv.EICAR[20:])), 0, 0, 0, 0))
	must(t, err)
	var got bytes.Buffer
	_ = busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = got.ReadFrom(busy)
	if got.String() != "stream: "+testenv.EicarThreat+" FOUND\x00" {
		t.Errorf("scan in progress at shutdown: %q", got.String())
	}
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not stop after its last request")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
