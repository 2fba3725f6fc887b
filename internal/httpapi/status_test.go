package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"clamgate/internal/httpapi"
	"clamgate/internal/testenv"
)

const tokenOps = "cg_test-token-ops"

// statusAPI is a gateway whose policy ops (with a token) may read the
// status page, and whose policy console (no token: loopback only) may
// too, on a listener of its own, for a browser that sends no token.
func statusAPI(t *testing.T) *api {
	console := testenv.FreePort(t)
	a := startAPI(t, testenv.ClamdOptions{}, `
[policy.ops]
status = true
tokens_sha256 = ["`+sha(tokenOps)+`"]

[policy.console]
status = true

[[listener]]
address = "tcp:`+console+`"
protocol = "http"
policy = "console"
`)
	a.statusAddr = console
	return a
}

// TestStatus: /v1/status and / are served to status = true policies only,
// name every policy and backend, count scans as they are made, and never
// name an object.
func TestStatus(t *testing.T) {
	a := statusAPI(t)
	for _, tc := range []struct {
		addr, token string
		status      int
	}{
		{a.open, "", 403}, {a.tokened, "", 401}, {a.tokened, tokenApp, 403}, {a.tokened, tokenOps, 200}, {a.open, tokenOps, 200},
	} {
		for _, path := range []string{"/v1/status", "/"} {
			if resp, body := a.do(tc.addr, "GET", path, tc.token, "", nil); resp.StatusCode != tc.status {
				t.Errorf("%s with %q: %d, want %d: %s", path, tc.token, resp.StatusCode, tc.status, body)
			}
		}
	}
	before := a.statusJSON(t)
	const secret = "secret-object-name.bin"
	a.do(a.open, "POST", "/v1/scan?name="+secret, "", "", strings.NewReader(testenv.EICAR))
	a.do(a.open, "POST", "/v1/scan?name="+secret, "", "", strings.NewReader("clean"))
	after := a.statusJSON(t)
	b, a2 := policyLine(before, "local"), policyLine(after, "local")
	if a2.Scans != b.Scans+2 || a2.Infected != b.Infected+1 || a2.Clean != b.Clean+1 {
		t.Fatalf("local before %+v, after %+v", b, a2)
	}
	if len(after.Backends) != 1 || !after.Backends[0].Up || !after.Engine.Answered {
		t.Fatalf("status %+v", after)
	}
	for _, p := range []string{"local", "app", "noscan", "ops"} {
		if policyLine(after, p) == nil {
			t.Errorf("policy %s not on the status", p)
		}
	}
	_, page := a.do(a.open, "GET", "/", tokenOps, "", nil)
	_, js := a.do(a.open, "GET", "/v1/status", tokenOps, "", nil)
	if bytes.Contains(page, []byte(secret)) || bytes.Contains(js, []byte(secret)) {
		t.Fatal("the status names an object")
	}
}

func (a *api) statusJSON(t *testing.T) httpapi.Status {
	t.Helper()
	resp, body := a.do(a.open, "GET", "/v1/status", tokenOps, "", nil)
	var st httpapi.Status
	if resp.StatusCode != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	return st
}

func policyLine(st httpapi.Status, name string) *httpapi.PolicyStatus {
	for i := range st.Policies {
		if st.Policies[i].Name == name {
			return &st.Policies[i]
		}
	}
	return nil
}

// TestStatusPageInChromium renders / in headless Chromium (no script on
// the page; --dump-dom prints the DOM it built) while scans run, and finds
// the policies, the engine's version and counters that change between two
// loads.
func TestStatusPageInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		testenv.MissingPeer(t, "chromium", "apt-get install chromium (scripts/install-deps.sh --test)")
	}
	a := statusAPI(t)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := []byte(testenv.EICAR)
			if i%2 == 1 {
				body = randomBytes(64 << 10)
			}
			a.do(a.open, "POST", "/v1/scan", "", "", bytes.NewReader(body))
			time.Sleep(20 * time.Millisecond)
		}
	}()
	load := func() string {
		out, err := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--user-data-dir="+t.TempDir(), "--dump-dom", "http://"+a.statusAddr+"/").Output()
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return string(out)
	}
	first := load()
	time.Sleep(500 * time.Millisecond)
	second := load()
	close(stop)
	<-done
	for _, want := range []string{`id="policy-local"`, `id="policy-ops"`, `id="engine-version">ClamAV `, "local signatures only"} {
		if !strings.Contains(second, want) {
			t.Errorf("the page has no %q:\n%s", want, second)
		}
	}
	scans := regexp.MustCompile(`id="policy-local"><td>local</td><td class="scans">(\d+)</td>`)
	m1, m2 := scans.FindStringSubmatch(first), scans.FindStringSubmatch(second)
	if m1 == nil || m2 == nil || m1[1] == m2[1] {
		t.Fatalf("local's scan count did not change between loads: %v, %v", m1, m2)
	}
}

// TestDisconnectWhileQueued: a client that hangs up while its job waits
// for the engine has it dropped and counted abandoned, not failed.
func TestDisconnectWhileQueued(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{SlowSignatures: 100000}, `
[policy.ops]
status = true
max_concurrent = 1
tokens_sha256 = ["`+sha(tokenOps)+`"]
`)
	busy := make(chan struct{})
	go func() { // holds the policy's one slot for a while
		defer close(busy)
		req, _ := http.NewRequest("POST", "http://"+a.open+"/v1/scan", bytes.NewReader(randomBytes(8<<20)))
		req.Header.Set("Authorization", "Bearer "+tokenOps)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// The holder is in the engine once clamd has a second live thread
	// (the first answers STATS): its upload is spooled before it takes
	// the slot, which can take long on a loaded machine.
	for deadline := time.Now().Add(20 * time.Second); clamdBusyThreads(t, a) < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the holder's scan never reached clamd")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := net.Dial("tcp", a.open)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /v1/scan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 5\r\n\r\nhello", tokenOps)
	for deadline := time.Now().Add(10 * time.Second); policyLine(a.statusJSON(t), "ops").QueuedJobs != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the second job never waited for the slot")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Close()
	<-busy
	deadline := time.Now().Add(10 * time.Second)
	for {
		ops := policyLine(a.statusJSON(t), "ops")
		if ops.Abandoned == 1 && ops.Failed == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ops %+v: want 1 abandoned, none failed", ops)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clamdBusyThreads is how many of clamd's threads are busy besides the one
// answering STATS.
func clamdBusyThreads(t *testing.T, a *api) int {
	t.Helper()
	stats, err := a.clamd.Client("unix").Command(context.Background(), "STATS")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`THREADS: live (\d+)`).FindStringSubmatch(stats)
	if m == nil {
		t.Fatalf("STATS: %s", stats)
	}
	n, _ := strconv.Atoi(m[1])
	return n - 1
}
