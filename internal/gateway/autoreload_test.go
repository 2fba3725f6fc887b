package gateway_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestManagedAutoReload: with the default reload = "auto", the gateway's
// managed clamd (in its own memory cgroup, with room for two of the small
// test databases) reloads concurrently, and the choice is visible in the
// log, STATS and /metrics; a database change is served.
func TestManagedAutoReload(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the managed clamd's cgroup needs root")
	}
	dir := testenv.TempDir(t)
	db := filepath.Join(dir, "db")
	must(t, os.Mkdir(db, 0o755))
	probe := func(n int) (string, string) {
		body := fmt.Sprintf("clamgate managed auto probe %d %d", n, os.Getpid())
		return body, fmt.Sprintf("%x:%d:Clamgate-Managed-Auto-%d\n", md5.Sum([]byte(body)), len(body), n)
	}
	_, sig := probe(0)
	must(t, os.WriteFile(filepath.Join(db, "probe0.hdb"), []byte(sig), 0o644))
	httpAddr := testenv.FreePort(t)
	g := managedGateway(t, dir, db, "cgeng-autoreload", httpAddr, `settle = "300ms"`)
	waitStatus(t, "http://"+httpAddr+"/readyz", 200)
	gw, err := clamd.New("unix:"+dir+"/gw.sock", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	body, sig := probe(1)
	must(t, os.WriteFile(filepath.Join(db, "probe1.hdb"), []byte(sig), 0o644))
	want := "stream: Clamgate-Managed-Auto-1.UNOFFICIAL FOUND"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		reply, err := gw.Instream(context.Background(), strings.NewReader(body))
		if err == nil && reply == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new signature not served: %q %v", reply, err)
		}
	}
	stats, err := gw.Command(context.Background(), "STATS")
	if err != nil || !strings.Contains(stats, " reload concurrent (cgroup)\n") {
		t.Errorf("STATS does not name the reload mode: %q %v", stats, err)
	}
	if m := get(t, "http://"+httpAddr+"/metrics"); !strings.Contains(m, `clamgate_database_reload_mode{basis="cgroup",mode="concurrent"} 1`) {
		t.Errorf("/metrics lacks the reload mode:\n%s", grepLines(m, "reload_mode"))
	}
	if log := g.Log.String(); !strings.Contains(log, `msg="database reload mode" mode=concurrent basis=cgroup restarted=false`) {
		t.Errorf("the reload's mode is not logged")
	}
}

// managedGateway starts a gateway with its managed clamd (as a user of its
// own, named user) on the database db, its state in dir, a listener
// dir/gw.sock for the policy "test", /metrics on httpAddr, and the given
// [database] keys.
func managedGateway(t *testing.T, dir, db, user, httpAddr, database string) *testenv.Gateway {
	t.Helper()
	return testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[engine]
clamd = "/usr/sbin/clamd"
state_dir = "%s/state"
database = "%s"
user = "%s"
[backend]
max_jobs = 3
[database]
%s
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s/gw.sock"
policy = "test"
mode = "0666"
[policy.test]
`, dir, db, testenv.EngineUser(t, user), database, httpAddr, dir)))
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
