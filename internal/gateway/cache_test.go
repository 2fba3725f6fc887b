package gateway_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestVerdictCache runs the verdict cache against a real clamd (with
// AlertExceedsMax, as the gateway's engines have it) through three
// policies that differ only in on_limits:
//   - an external clamd's database is unknown until a reload the gateway
//     can follow: no lookups before it;
//   - a hit follows a miss and answers clamd's own text, clean and EICAR;
//   - an object past a limit is not stored for on_limits = error, is for
//     block, and each policy's on_limits applies to the hit;
//   - a signature added for an object cached clean makes it infected at the
//     first scan after the reload.
func TestVerdictCache(t *testing.T) {
	t.Parallel()
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: append([]string{"ConcurrentDatabaseReload no", "IdleTimeout 2"}, testenv.LimitsClamd...)})
	dir := testenv.TempDir(t)
	httpAddr := testenv.FreePort(t)
	var listeners strings.Builder
	for _, p := range []string{"block", "error", "pass"} {
		fmt.Fprintf(&listeners, "[[listener]]\naddress = \"unix:%s/%s.sock\"\npolicy = %q\nmode = \"0666\"\n[policy.%s]\non_limits = %q\n", dir, p, p, p, p)
	}
	g := testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
[database]
dir = "%s"
settle = "200ms"
reload = "frugal"
[server]
http = "tcp:%s"
%s`, c.Socket, c.DBDir, httpAddr, listeners.String())))
	waitStatus(t, "http://"+httpAddr+"/readyz", 200)
	scan := func(policy string, body []byte) string {
		t.Helper()
		gw, err := clamd.New("unix:"+dir+"/"+policy+".sock", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := gw.Instream(context.Background(), strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("%s: %v", policy, err)
		}
		return reply
	}
	lookups := func(policy, result string) int { t.Helper(); return cacheLookups(t, httpAddr, policy, result) }
	clean := fmt.Appendf(nil, "clamgate cache probe %d %d", os.Getpid(), time.Now().UnixNano())

	scan("block", clean)
	scan("block", clean)
	if n := lookups("block", "miss") + lookups("block", "hit"); n != 0 {
		t.Fatalf("%d lookups before the gateway knew clamd's database", n)
	}
	addSignature(t, g, c.DBDir, "unrelated", []byte("nothing sends this"), 1)

	t.Run("hit after miss", func(t *testing.T) {
		for _, o := range []struct {
			body []byte
			want string
		}{{clean, "stream: OK"}, {[]byte(testenv.EICAR), "stream: " + testenv.EicarThreat + " FOUND"}} {
			misses, hits := lookups("block", "miss"), lookups("block", "hit")
			if a, b := scan("block", o.body), scan("block", o.body); a != o.want || b != o.want {
				t.Errorf("%q then %q, want %q twice", a, b, o.want)
			}
			if lookups("block", "miss") != misses+1 || lookups("block", "hit") != hits+1 {
				t.Errorf("%s: want one miss then one hit", o.want)
			}
		}
	})
	t.Run("limits per policy", func(t *testing.T) {
		over := testenv.NestedZip(17)
		limitsFound := regexp.MustCompile(`^stream: Heuristics\.Limits\.Exceeded\.\S+ FOUND$`)
		limitsError := regexp.MustCompile(`^stream: Heuristics\.Limits\.Exceeded\.\S+ ERROR$`)
		for range 2 {
			if r := scan("error", over); !limitsError.MatchString(r) {
				t.Errorf("error policy: %q", r)
			}
		}
		if lookups("error", "miss") != 2 || lookups("error", "hit") != 0 {
			t.Errorf("on_limits = error stored a limits verdict: %d misses, %d hits", lookups("error", "miss"), lookups("error", "hit"))
		}
		for range 2 {
			if r := scan("block", over); !limitsFound.MatchString(r) {
				t.Errorf("block policy: %q", r)
			}
		}
		if r := scan("pass", over); r != "stream: OK" {
			t.Errorf("pass policy, cached: %q", r)
		}
		if r := scan("error", over); !limitsError.MatchString(r) {
			t.Errorf("error policy, cached: %q", r)
		}
		if lookups("pass", "hit") != 1 || lookups("error", "hit") != 1 {
			t.Errorf("want the block policy's verdict served to the others, each under its own on_limits")
		}
	})
	t.Run("flush on database change", func(t *testing.T) {
		if r := scan("block", clean); r != "stream: OK" {
			t.Fatalf("%q", r)
		}
		hits := lookups("block", "hit")
		addSignature(t, g, c.DBDir, "probe", clean, 2)
		want := "stream: Clamgate-Cache-probe.UNOFFICIAL FOUND"
		if r := scan("block", clean); r != want {
			t.Errorf("first scan after the reload: %q, want %q", r, want)
		}
		if lookups("block", "hit") != hits {
			t.Errorf("a verdict of the old database was served")
		}
		if r := scan("block", clean); r != want {
			t.Errorf("cached: %q, want %q", r, want)
		}
	})
}

// cacheLookups reads clamgate_cache_lookups_total for a policy and result
// (hit or miss) from the gateway's /metrics.
func cacheLookups(t *testing.T, httpAddr, policy, result string) int {
	t.Helper()
	m := regexp.MustCompile(fmt.Sprintf(`clamgate_cache_lookups_total\{client="%s",result="%s"\} (\d+)`, policy, result)).
		FindStringSubmatch(get(t, "http://"+httpAddr+"/metrics"))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// addSignature adds an MD5 signature named Clamgate-Cache-NAME for body to
// the database in dir, and waits until the gateway has logged its reloads
// (the n-th since start).
func addSignature(t *testing.T, g *testenv.Gateway, dir, name string, body []byte, n int) {
	t.Helper()
	sig := fmt.Sprintf("%x:%d:Clamgate-Cache-%s\n", md5.Sum(body), len(body), name)
	must(t, os.WriteFile(filepath.Join(dir, name+".hdb"), []byte(sig), 0o644))
	for deadline := time.Now().Add(60 * time.Second); strings.Count(g.Log.String(), "signature database (reload)") < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged for %s", name)
		}
	}
}
