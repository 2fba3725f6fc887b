package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// TestReadyzDuringFrugalReload: while a frugal reload holds scans, /readyz
// answers 503 and says why, so that a Service sends new clients to other
// pods; before the reload and after it, 200. (Before, /readyz followed
// only the health check's PING, which fails only once a reload outlasts
// its 2 s timeout.) The clamd is real and runs ConcurrentDatabaseReload
// no; its 30000 extra signatures make the reload last long enough to see.
func TestReadyzDuringFrugalReload(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{SlowSignatures: 30000,
		Extra: []string{"ConcurrentDatabaseReload no", "SelfCheck 0"}})
	dir := testenv.TempDir(t)
	httpAddr := testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
[database]
dir = "%s"
reload = "frugal"
settle = "200ms"
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s/gw.sock"
policy = "test"
[policy.test]
`, c.Socket, c.DBDir, httpAddr, dir)))
	url := "http://" + httpAddr + "/readyz"
	waitStatus(t, url, 200)
	freshclamWrite(t, c.DBDir, "fresh.ndb", fmt.Sprintf("Clamgate.Fresh:0:*:%x\n", "readyz-during-reload"))
	seen := []string{"200 ready"} // each change of /readyz's answer, from waitStatus's
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, body := readyz(url)
		if len(seen) == 0 || !strings.HasPrefix(seen[len(seen)-1], fmt.Sprint(code)) {
			seen = append(seen, fmt.Sprintf("%d %s", code, body))
		}
		if len(seen) >= 2 && code == 200 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("/readyz answers in turn: %q", seen)
	if len(seen) < 3 || !strings.HasPrefix(seen[1], "503 not ready: reloading the database (frugal)") || !strings.HasPrefix(seen[len(seen)-1], "200") {
		t.Fatalf("/readyz did not go 200 → 503 (reloading) → 200: %q", seen)
	}
}

func readyz(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}
