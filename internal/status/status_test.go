package status

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clamgate/internal/metrics"
	"clamgate/internal/scan"
)

// start runs a Server on a free loopback port and returns its base URL; the
// server is stopped (and must stop cleanly) when the test ends.
func start(t *testing.T, s *Server) string {
	t.Helper()
	s.Addr = "tcp:127.0.0.1:0"
	s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(t.Context())
	l, err := s.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not shut down")
		}
	})
	return "http://" + l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// sample finds one series in an exposition by its full name and labels;
// absent is -1, so that "not yet there" and "zero" stay distinguishable.
func sample(body, series string) float64 {
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return -2
			}
			return v
		}
	}
	return -1
}

func TestMetricsMoveWithScans(t *testing.T) {
	m := metrics.New()
	up := atomic.Bool{}
	up.Store(true)
	m.SetBackends(func() []metrics.BackendState {
		return []metrics.BackendState{{Address: "unix:/run/clamav/clamd.sock", Role: "primary", Up: up.Load()}}
	})
	built := time.Now().Add(-2 * time.Hour)
	m.SetDatabase(func() (int, int, time.Time, bool) { return 27501, 8_712_345, built, true })
	m.SetEngineMemory(func() (int64, int64, bool) { return metrics.EngineMemory(os.Getpid(), "") })
	base := start(t, &Server{Metrics: m.Handler()})

	const mailClean = `clamgate_scans_total{client="mail",protocol="milter",verdict="clean"}`
	const proxyInfected = `clamgate_scans_total{client="proxy",protocol="icap",verdict="infected"}`
	const proxyBytes = `clamgate_scanned_bytes_total{client="proxy",protocol="icap"}`
	const proxyDepth = `clamgate_queue_depth{client="proxy"}`
	const mailLatency = `clamgate_scan_duration_seconds_count{client="mail",protocol="milter"}`
	const backendUp = `clamgate_backend_up{backend="unix:/run/clamav/clamd.sock",role="primary"}`

	_, body := get(t, base+"/metrics")
	if v := sample(body, mailClean); v != -1 {
		t.Errorf("before any scan: %s = %v", mailClean, v)
	}
	if v := sample(body, backendUp); v != 1 {
		t.Errorf("%s = %v, want 1", backendUp, v)
	}
	if v := sample(body, "clamgate_database_age_seconds"); v < 7200 || v > 7300 {
		t.Errorf("database age %v, want about 7200", v)
	}

	mail := scan.Job{Client: "mail", Protocol: "milter", Kind: scan.Stream, Object: "stream"}
	proxy := scan.Job{Client: "proxy", Protocol: "icap", Kind: scan.Stream, Object: "stream"}
	for range 3 {
		m.Done(mail, scan.Outcome{Result: scan.Result{Reply: "stream: OK", Verdict: scan.Clean}, Wait: time.Millisecond,
			Duration: 4 * time.Millisecond, Bytes: 12_000})
	}
	m.Queue("proxy", 5, 0)
	m.Done(proxy, scan.Outcome{Result: scan.Result{Reply: "stream: Win.Test.EICAR_HDB-1 FOUND", Verdict: scan.Infected, Threat: "Win.Test.EICAR_HDB-1"},
		Wait: 800 * time.Millisecond, Duration: 3 * time.Second, Bytes: 100 << 20})
	up.Store(false)

	_, body = get(t, base+"/metrics")
	for series, want := range map[string]float64{
		mailClean: 3, proxyInfected: 1, proxyBytes: 100 << 20, proxyDepth: 5, mailLatency: 3, backendUp: 0,
		"clamgate_database_version": 27501, "clamgate_database_signatures": 8_712_345,
	} {
		if v := sample(body, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if v := sample(body, "clamgate_engine_rss_bytes"); v <= 0 {
		t.Errorf("engine_rss_bytes = %v (own pid)", v)
	}

	m.Queue("proxy", 0, 0)
	_, body = get(t, base+"/metrics")
	if v := sample(body, proxyDepth); v != 0 {
		t.Errorf("drained queue: %s = %v", proxyDepth, v)
	}
}

func TestReadyzFollowsReady(t *testing.T) {
	var notReady atomic.Pointer[error]
	down := errors.New("no backend answers PING")
	notReady.Store(&down)
	base := start(t, &Server{Ready: func() error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return nil
	}})

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz while not ready: %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, down.Error()) {
		t.Errorf("readyz: %d %q, want 503 with the reason", code, body)
	}
	notReady.Store(nil)
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("readyz: %d %q, want 200 ready", code, body)
	}
	notReady.Store(&down)
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("readyz after losing the backend: %d, want 503", code)
	}
	if code, _ := get(t, base+"/metrics"); code != 404 {
		t.Errorf("metrics without a handler: %d, want 404", code)
	}
}

func TestOnlyGet(t *testing.T) {
	base := start(t, &Server{})
	resp, err := http.Post(base+"/readyz", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %d", resp.StatusCode)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	for _, addr := range []string{"tcp:" + net.JoinHostPort(ip, "0"), "tcp::9310", "tcp:0.0.0.0:9310"} {
		err := (&Server{Addr: addr}).Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "not loopback") {
			t.Errorf("Run(%s) = %v, want a loopback refusal", addr, err)
		}
	}
	for _, addr := range []string{"unix:/run/clamgate/status.sock", "127.0.0.1:9310"} {
		if err := (&Server{Addr: addr}).Run(t.Context()); err == nil {
			t.Errorf("Run(%s) accepted", addr)
		}
	}
	s := &Server{Addr: "tcp:" + net.JoinHostPort(ip, "0"), AllowNonLoopback: true}
	l, err := s.Listen(t.Context())
	if err != nil {
		t.Fatalf("allowed non-loopback: %v", err)
	}
	l.Close()
}

// nonLoopbackIP is an address of this host that is not loopback, so that the
// allowed case really binds beyond loopback.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return ""
}

// TestConnectionLimit floods the status port with connections that never
// send a request (the attack that exhausted the gateway's descriptors): the
// server holds at most MaxConnections of them, and serves again once they
// are gone.
func TestConnectionLimit(t *testing.T) {
	const limit, flood = 4, 300
	base := start(t, &Server{MaxConnections: limit})
	addr := strings.TrimPrefix(base, "http://")
	before := openFDs(t)
	var conns []net.Conn
	for range flood {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond) // let the server accept what it will
	// Both ends are in this process: the flood's own descriptors, plus the
	// server's accepted ones, which must not exceed the limit.
	if grown := openFDs(t) - before; grown > flood+limit+8 {
		t.Errorf("descriptors grew by %d for %d connections: the server holds %d, want at most %d",
			grown, flood, grown-flood, limit)
	}
	for _, c := range conns {
		c.Close()
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("after the flood: %d", code)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
