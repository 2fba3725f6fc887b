package gateway_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestCacheAfterManagedReload: with the managed clamd, the verdict cache
// serves again after a reload, concurrent (once clamd's log says it
// activated the new database) as well as frugal. An object is scanned OK
// and cached; a signature for it is added; from the gateway's reload on,
// no scan is answered from the cache until the object is FOUND (an OK
// meanwhile is clamd's old database, which a concurrent reload keeps
// serving while it loads), the first FOUND is a miss, and hits resume.
func TestCacheAfterManagedReload(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the managed clamd runs as its own user: needs root")
	}
	for _, mode := range []string{"concurrent", "frugal"} {
		t.Run(mode, func(t *testing.T) { cacheAfterReload(t, mode) })
	}
}

func cacheAfterReload(t *testing.T, mode string) {
	dir := testenv.TempDir(t)
	db := filepath.Join(dir, "db")
	must(t, os.Mkdir(db, 0o755))
	// Enough signatures that a reload takes a while: a concurrent one
	// keeps answering with the old database meanwhile.
	var filler strings.Builder
	for i := range 200000 {
		fmt.Fprintf(&filler, "%032x:%d:Clamgate-Filler-%d\n", md5.Sum([]byte(strconv.Itoa(i))), 1000+i, i)
	}
	must(t, os.WriteFile(filepath.Join(db, "filler.hdb"), []byte(filler.String()), 0o644))
	httpAddr := testenv.FreePort(t)
	g := managedGateway(t, dir, db, "cgeng-cache-"+mode[:4], httpAddr, fmt.Sprintf("settle = \"200ms\"\nreload = %q", mode))
	waitStatus(t, "http://"+httpAddr+"/readyz", 200)
	gw, err := clamd.New("unix:"+dir+"/gw.sock", 30*time.Second)
	must(t, err)
	body := fmt.Sprintf("clamgate cache after %s reload %d %d", mode, os.Getpid(), time.Now().UnixNano())
	scan := func() string {
		t.Helper()
		reply, err := gw.Instream(context.Background(), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	lookups := func(result string) int { t.Helper(); return cacheLookups(t, httpAddr, "test", result) }
	if a, b := scan(), scan(); a != "stream: OK" || b != "stream: OK" || lookups("hit") != 1 {
		t.Fatalf("before the reload: %q, %q, %d hits; want OK twice, the second a hit", a, b, lookups("hit"))
	}
	addSignature(t, g, db, "after-"+mode, []byte(body), 1)
	hits, start := lookups("hit"), time.Now()
	want := "stream: Clamgate-Cache-after-" + mode + ".UNOFFICIAL FOUND"
	oks := 0
	for r := scan(); r != want; r = scan() {
		if r != "stream: OK" {
			t.Fatalf("during the reload: %q", r)
		}
		if lookups("hit") != hits {
			t.Fatalf("the cached OK of the old database was served after the reload")
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("no FOUND a minute after the reload")
		}
		oks++
		time.Sleep(20 * time.Millisecond)
	}
	if lookups("hit") != hits {
		t.Errorf("the first FOUND came from the cache")
	}
	t.Logf("%s: FOUND %v after the reload was logged (%d OK from the old database meanwhile)", mode, time.Since(start).Round(time.Millisecond), oks)
	if mode == "concurrent" {
		waitLog(t, g, "verdict cache serving: clamd activated the new database")
	}
	for deadline := time.Now().Add(10 * time.Second); lookups("hit") == hits; time.Sleep(100 * time.Millisecond) {
		if r := scan(); r != want {
			t.Fatalf("after the reload: %q", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cache hits after the %s reload", mode)
		}
	}
	t.Logf("%s: hits resumed: %d", mode, lookups("hit")-hits)
}
