package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// pod is one gateway process with its own real clamd, as a pod of the
// pool runs them.
type pod struct {
	name string
	c    *testenv.Clamd
	log  string
}

// TestStaggeredReloads: three gateway processes whose real clamd reloads
// frugally and one that reloads concurrently, all seeing the same
// database update at once, with [database] stagger = "kubernetes" against
// testenv's stand-in for the Lease API (a real kube-apiserver needs
// scripts/kube-apiserver.sh). The frugal pods' holds never overlap (the
// log lines' timestamps from taking the lease to giving it back), each is
// served the new signature, and the concurrent pod never takes the lease.
func TestStaggeredReloads(t *testing.T) {
	k := testenv.StartLeaseAPI(t)
	staggeredReloads(t, k.Host, k.Port, k.Credentials)
}

// TestStaggeredReloadsKubeAPI: the same against a real kube-apiserver (and
// etcd) with the chart's RBAC for the pods' service account.
func TestStaggeredReloadsKubeAPI(t *testing.T) {
	k := testenv.StartKubeAPI(t, "clamgate")
	k.GrantLease(t, "clamgate", "pool-reload")
	staggeredReloads(t, k.Host, k.Port, k.Credentials(t, "clamgate"))
}

func staggeredReloads(t *testing.T, host, port, creds string) {
	dir := testenv.TempDir(t)
	bin := buildClamgate(t, dir)
	var pods []*pod
	for i, mode := range []string{"frugal", "frugal", "frugal", "concurrent"} {
		conc := map[string]string{"frugal": "no", "concurrent": "yes"}[mode]
		p := &pod{name: fmt.Sprintf("pod-%d", i), c: testenv.StartClamd(t, testenv.ClamdOptions{SlowSignatures: 30000,
			Extra: []string{"ConcurrentDatabaseReload " + conc, "SelfCheck 0"}})}
		conf := writePodConfig(t, dir, p, mode, creds, "15m")
		startPod(t, bin, conf, p, host, port)
		pods = append(pods, p)
	}
	for _, p := range pods {
		waitPodLog(t, p, "signature database (start)", 30*time.Second)
	}
	marker := fmt.Sprintf("CLAMGATE-STAGGER-%d", time.Now().UnixNano())
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() { freshclamWrite(t, p.c.DBDir, "fresh.ndb", fmt.Sprintf("Clamgate.Stagger:0:*:%x\n", marker)) })
	}
	wg.Wait()
	type span struct {
		pod      string
		from, to time.Time
	}
	var spans []span
	for _, p := range pods {
		waitPodLog(t, p, "signature database (reload)", 2*time.Minute)
		taken, released := logTimes(t, p, "kubernetes lease taken"), logTimes(t, p, "kubernetes lease released")
		if p.name == "pod-3" {
			if len(taken) != 0 {
				t.Errorf("the concurrent pod took the lease: %v", taken)
			}
			continue
		}
		if len(taken) != 1 || len(released) != 1 {
			t.Fatalf("%s: lease taken %v, released %v", p.name, taken, released)
		}
		spans = append(spans, span{p.name, taken[0], released[0]})
		gw, err := clamd.New("unix:"+filepath.Join(dir, p.name+".sock"), 30*time.Second)
		must(t, err)
		reply, err := gw.Instream(context.Background(), strings.NewReader("x "+marker+" y"))
		if err != nil || !strings.Contains(reply, "Clamgate.Stagger.UNOFFICIAL FOUND") {
			t.Errorf("%s does not serve the new signature: %q %v", p.name, reply, err)
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	for i := 1; i < len(spans); i++ {
		if spans[i].from.Before(spans[i-1].to) {
			t.Errorf("%s reloaded from %s while %s held the lease until %s", spans[i].pod, spans[i].from.Format(time.StampMicro),
				spans[i-1].pod, spans[i-1].to.Format(time.StampMicro))
		}
	}
	for _, s := range spans {
		t.Logf("%s held the lease %s → %s (%v)", s.pod, s.from.Format(time.StampMilli), s.to.Format(time.StampMilli), s.to.Sub(s.from).Round(time.Millisecond))
	}
}

// writePodConfig is a pod's gateway configuration: its clamd, the database
// it watches, the reload mode, and the stagger through the lease.
func writePodConfig(t *testing.T, dir string, p *pod, mode, creds, wait string) string {
	p.log = filepath.Join(dir, p.name+".log")
	conf := filepath.Join(dir, p.name+".toml")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
[backend]
address = "unix:%s"
[database]
dir = "%s"
reload = "%s"
settle = "200ms"
stagger = "kubernetes"
stagger_lease = "pool-reload"
stagger_wait = "%s"
stagger_unready = "500ms"
stagger_credentials = "%s"
[server]
log_format = "json"
[[listener]]
address = "unix:%s/%s.sock"
policy = "test"
[policy.test]
`, p.c.Socket, p.c.DBDir, mode, wait, creds, dir, p.name)), 0o644))
	return conf
}

// TestStaggerFailsOpen: with the API failing, a frugal reload waits
// stagger_wait for its turn, then runs anyway (after a random pause of up
// to 15 s) and says so: the database is not left stale.
func TestStaggerFailsOpen(t *testing.T) {
	k := testenv.StartLeaseAPI(t)
	k.SetDown(true)
	dir := testenv.TempDir(t)
	p := &pod{name: "pod-down", c: testenv.StartClamd(t, testenv.ClamdOptions{Extra: []string{"ConcurrentDatabaseReload no", "SelfCheck 0"}})}
	startPod(t, buildClamgate(t, dir), writePodConfig(t, dir, p, "frugal", k.Credentials, "1s"), p, k.Host, k.Port)
	waitPodLog(t, p, "signature database (start)", 30*time.Second)
	freshclamWrite(t, p.c.DBDir, "fresh.ndb", fmt.Sprintf("Clamgate.Down:0:*:%x\n", "stagger-fails-open"))
	waitPodLog(t, p, "reload: no turn within stagger_wait; reloading anyway after a random pause", 30*time.Second)
	waitPodLog(t, p, "signature database (reload)", 30*time.Second)
	if n := len(logTimes(t, p, "kubernetes lease taken")); n != 0 {
		t.Errorf("took the lease %d times from an API that fails", n)
	}
}

// startPod runs the gateway as its own process, with the environment a
// pod's container has: the API's service address and the downward API's
// POD_NAME and POD_NAMESPACE.
func startPod(t *testing.T, bin, conf string, p *pod, host, port string) {
	t.Helper()
	out, err := os.Create(p.log)
	must(t, err)
	cmd := exec.Command(bin, "serve", "--config", conf)
	cmd.Env = append(os.Environ(), "POD_NAME="+p.name, "POD_NAMESPACE=default",
		"KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port)
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("%s's log:\n%s", p.name, b)
		}
	})
}

func waitPodLog(t *testing.T, p *pod, msg string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); len(logTimes(t, p, msg)) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q", p.name, msg)
		}
	}
}

// logTimes are the times of the pod's JSON log lines with that message.
func logTimes(t *testing.T, p *pod, msg string) []time.Time {
	b, err := os.ReadFile(p.log)
	must(t, err)
	var at []time.Time
	for _, line := range strings.Split(string(b), "\n") {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			at = append(at, rec.Time)
		}
	}
	return at
}
