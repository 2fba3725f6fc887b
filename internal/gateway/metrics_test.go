package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestMetricsAndHealth scrapes /metrics while scans happen, and watches
// /readyz follow clamd's health.
func TestMetricsAndHealth(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := filepath.Join(testenv.TempDir(t), "gw.sock")
	httpAddr := testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
health_interval = "200ms"
[server]
http = "tcp:%s"
[database]
dir = "%s"
[[listener]]
address = "unix:%s"
policy = "mail"
mode = "0666"
[policy.mail]
`, c.Socket, httpAddr, c.DBDir, sock)))
	base := "http://" + httpAddr
	waitStatus(t, base+"/readyz", 200)
	gw, _ := clamd.New("unix:"+sock, 10*time.Second)
	for range 3 {
		gw.Instream(context.Background(), strings.NewReader("clean"))
	}
	gw.Instream(context.Background(), strings.NewReader(testenv.EICAR))
	m := get(t, base+"/metrics")
	for _, want := range []string{
		`clamgate_scans_total{client="mail",protocol="clamd",verdict="clean"} 3`,
		`clamgate_scans_total{client="mail",protocol="clamd",verdict="infected"} 1`,
		`clamgate_scan_duration_seconds_count{client="mail",protocol="clamd"} 4`,
		fmt.Sprintf(`clamgate_backend_up{backend="unix:%s",role="primary"} 1`, c.Socket),
		"clamgate_database_signatures 3",
		"clamgate_database_age_seconds",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	c.Kill()
	waitStatus(t, base+"/readyz", 503)
	if m := get(t, base+"/metrics"); !strings.Contains(m, fmt.Sprintf(`clamgate_backend_up{backend="unix:%s",role="primary"} 0`, c.Socket)) {
		t.Error("backend_up did not drop to 0")
	}
	if code := status(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d while the gateway serves", code)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func status(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for status(t, url) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d", url, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
