package doctor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/doctor"
	"clamgate/internal/testenv"
	"clamgate/internal/tlsid"
)

// TestEdgeRows: an edge's configuration forwarding to a real pool
// gateway (clamgate over TLS in front of a real clamd with
// AlertExceedsMax) and to a dead endpoint. edge-pool warns for the lost
// failover and fails with no endpoint left; clamd-limits asks the pool
// through TLS with the host's certificate; the engine rows do not apply;
// edge-no-clamd passes on a host with no clamd and its units masked, and
// fails with one running.
func TestEdgeRows(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.LimitsClamd})
	dir := testenv.TempDir(t)
	ca, caPair, err := tlsid.NewCA("edge test CA", 500*24*time.Hour)
	must(t, err)
	files := map[string][]string{"pool": {"dns:localhost", "ip:127.0.0.1"}, "mx1": {"dns:mx1.example.org"}}
	for name, ids := range files {
		pair, err := ca.Issue(ids, time.Now(), 400*24*time.Hour)
		must(t, err)
		_, _, err = pair.Write(dir, name)
		must(t, err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "ca.crt"), caPair.CertPEM, 0o600))
	pool := testenv.FreePort(t)
	central, err := config.Parse("pool.toml", fmt.Appendf(nil, `
[backend]
address = "unix:%s"
[[listener]]
address = "tls:%s"
policy = "edges"
tls_cert = "%[3]s/pool.crt"
tls_key = "%[3]s/pool.key"
tls_client_ca = "%[3]s/ca.crt"
[policy.edges]
tls_identities = ["dns:mx1.example.org"]
`, c.Socket, pool, dir))
	must(t, err)
	gw := testenv.StartGateway(t, central)
	dead := testenv.FreePort(t)
	edge := func(backends ...string) *doctor.Env {
		cfg, err := config.Parse("edge.toml", fmt.Appendf(nil, `
[backend]
address = ["%[1]s"]
tls_cert = "%[2]s/mx1.crt"
tls_key = "%[2]s/mx1.key"
tls_ca = "%[2]s/ca.crt"
[[listener]]
address = "unix:%[2]s/edge.sock"
policy = "local"
[policy.local]
`, strings.Join(backends, `", "`), dir))
		must(t, err)
		env := liveEnv()
		env.Config = cfg
		env.Root = "/"
		return env
	}
	expect(t, runOne(t, edge("tls:"+pool, "tls:"+dead), "edge-pool"), doctor.Warn,
		"tls:"+pool+": PONG, pool certificate CN=localhost until", "tls:"+dead+": dial tcp")
	expect(t, runOne(t, edge("tls:"+pool), "edge-pool"), doctor.Pass, "PONG")
	expect(t, runOne(t, edge("tls:"+dead), "edge-pool"), doctor.Fail, "connection refused")
	expect(t, runOne(t, edge("tls:"+pool), "clamd-limits"), doctor.Pass, "Heuristics.Limits.Exceeded")
	must(t, gw.Log.WaitFor("identity=dns:mx1.example.org", 5*time.Second))
	for _, id := range []string{"clamd-memory", "clamd-single", "image-digest", "engine-ids"} {
		expect(t, runOne(t, edge("tls:"+pool), id), doctor.Pass, "edge: the engine is the pool's")
	}

	root := debianUnits(t)
	maskAll(t, root, "clamav-daemon.service", "clamav-daemon.socket", "c-icap.service", "clamd@amavisd.service")
	env := edge("tls:" + pool)
	env.Root = root
	expect(t, runOne(t, env, "edge-no-clamd"), doctor.Pass, "no clamd process", "clamav-daemon.service masked")
	env = edge("tls:" + pool)
	env.Root = root
	env.Only = func(pid int) bool { return pid == c.PID() }
	expect(t, runOne(t, env, "edge-no-clamd"), doctor.Fail, fmt.Sprintf("clamd[%d] running", c.PID()))
	expect(t, runOne(t, liveEnv(), "edge-pool"), doctor.Pass, "not an edge")
	env = edge("tls:" + pool)
	env.Root = root
	expect(t, runOne(t, env, "freshclam"), doctor.Warn, "edge, only clamscan reads it")
}
