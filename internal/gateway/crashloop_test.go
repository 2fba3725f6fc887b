package gateway_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// TestManagedCrashLoopShown: a real clamd that exits at every start (its
// database is malformed) shows in /readyz as a crash loop with clamd's own
// last error line, not as "loading its database", and in the metrics.
func TestManagedCrashLoopShown(t *testing.T) {
	dir := testenv.TempDir(t)
	db := filepath.Join(dir, "db")
	must(t, os.Mkdir(db, 0o755))
	must(t, os.WriteFile(filepath.Join(db, "broken.ndb"), []byte("not a signature at all\n"), 0o644))
	httpAddr := testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[engine]
state_dir = "%s/state"
database = "%s"
max_threads = 2
user = "%s"
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s/gw.sock"
policy = "test"
[policy.test]
`, dir, db, testenv.EngineUser(t, "cgeng-crashloop"), httpAddr, dir)))
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code := status(t, "http://"+httpAddr+"/readyz")
		if code != 0 {
			body = get(t, "http://"+httpAddr+"/readyz")
		}
		if code == http.StatusServiceUnavailable && strings.Contains(body, "clamd's last error:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never named the crash loop: %d %q", code, body)
		}
	}
	t.Logf("/readyz: %s", body)
	for _, want := range []string{"crash-looping", "ERROR", "broken.ndb"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz lacks %q: %q", want, body)
		}
	}
	metrics := get(t, "http://"+httpAddr+"/metrics")
	if !strings.Contains(metrics, "clamgate_engine_crash_looping 1") || !strings.Contains(metrics, "clamgate_engine_crashes_total") {
		t.Errorf("metrics lack the crash loop:\n%s", grepLines(metrics, "clamgate_engine_"))
	}
}
