package engine

import (
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"clamgate/internal/rss"
)

// TestAutoReloadFollowsCgroupCap runs reload = "auto" against a real
// clamd in the real memory cgroup the sandbox made for it (v1 or v2),
// through the engine's part of a reload (Redecide, then Restart or
// RELOAD; the gateway's orchestration around it, holding scans, is
// tested in internal/gateway):
// with the cap the engine sets itself, the measured RSS leaves room for
// a second database and RELOAD runs concurrently, scans never held; once
// the cap is lowered below 2 x RSS + margin (still above RSS, so clamd
// lives) the next database change restarts clamd into the frugal mode,
// and raising the cap again brings the concurrent one back. Every step
// must also load the changed database.
func TestAutoReloadFollowsCgroupCap(t *testing.T) {
	s := startSandboxedMode(t, "auto")
	cg := s.e.Cgroup()
	if cg == "" {
		t.Skip("no memory cgroup on this host (the engine logged why)")
	}
	if m := s.e.ReloadMode(); m.Frugal || m.Basis != "cgroup" {
		t.Fatalf("at start, from the estimate: %+v", m)
	}
	confHas(t, s, "ConcurrentDatabaseReload yes")
	res := reloadProbe(t, s, 1)
	if res.mode.Frugal || res.restarted || res.mode.Basis != "cgroup" {
		t.Fatalf("ample cap: %+v", res)
	}
	resident, err := rss.Read(s.e.PID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("concurrent: clamd RSS %d MiB, cap %d MiB: %s", resident>>20, rss.Limit(cg)>>20, res.mode.Why)

	setCap(t, cg, resident+resident/2+8<<20) // above RSS, below 2 x RSS + 128 MiB
	pid := s.e.PID()
	res = reloadProbe(t, s, 2)
	if !res.mode.Frugal || !res.restarted || res.mode.Basis != "cgroup" {
		t.Fatalf("short cap: %+v", res)
	}
	if s.e.PID() == pid || s.e.PID() == 0 {
		t.Fatalf("clamd not restarted into frugal (pid %d, was %d)", s.e.PID(), pid)
	}
	confHas(t, s, "ConcurrentDatabaseReload no")
	t.Logf("frugal: %s", res.mode.Why)

	res = reloadProbe(t, s, 3) // frugal again: RELOAD, no restart
	if !res.mode.Frugal || res.restarted {
		t.Fatalf("short cap, second change: %+v", res)
	}

	setCap(t, cg, 1<<30)
	res = reloadProbe(t, s, 4)
	if res.mode.Frugal || !res.restarted {
		t.Fatalf("cap raised again: %+v", res)
	}
	confHas(t, s, "ConcurrentDatabaseReload yes")
}

type probed struct {
	mode      ReloadMode
	restarted bool
}

// reloadProbe adds signature n to the database, has the engine decide its
// reload and perform it, and checks that clamd finds the signature.
func reloadProbe(t *testing.T, s *sandboxed, n int) probed {
	t.Helper()
	body := writeProbe(t, s, n)
	start := time.Now()
	var res probed
	res.mode, res.restarted = s.e.Redecide()
	if err := engineReload(s, res.restarted); err != nil {
		t.Fatalf("reload %d: %v", n, err)
	}
	t.Logf("reload %d: %s, restarted %v, took %v", n, res.mode.Name(), res.restarted, time.Since(start).Round(time.Millisecond))
	waitFound(t, s, body, n, res)
	return res
}

// writeProbe adds signature n to the database and returns the body it
// finds.
func writeProbe(t *testing.T, s *sandboxed, n int) string {
	t.Helper()
	body := fmt.Sprintf("clamgate auto reload probe %d %d", n, os.Getpid())
	hdb := fmt.Sprintf("%x:%d:Clamgate-Auto-Probe-%d\n", md5.Sum([]byte(body)), len(body), n)
	if err := os.WriteFile(filepath.Join(s.db, "auto"+strconv.Itoa(n)+".hdb"), []byte(hdb), 0o644); err != nil {
		t.Fatal(err)
	}
	return body
}

// waitFound waits until clamd finds probe n's body: a concurrent RELOAD
// returns before clamd has swapped engines.
func waitFound(t *testing.T, s *sandboxed, body string, n int, what any) {
	t.Helper()
	want := fmt.Sprintf("stream: Clamgate-Auto-Probe-%d.UNOFFICIAL FOUND", n)
	var got string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, _ = s.client.Instream(s.ctx, strings.NewReader(body)); got == want {
			return
		}
	}
	t.Fatalf("after reload %d (%+v): %q", n, what, got)
}

// engineReload restarts the managed clamd into its new mode, or sends it
// RELOAD.
func engineReload(s *sandboxed, restart bool) error {
	if restart {
		if err := s.e.Restart(s.ctx); err != nil {
			return err
		}
		return s.e.WaitReady(s.ctx)
	}
	reply, err := s.client.Command(s.ctx, "RELOAD")
	if err == nil && reply != "RELOADING" {
		err = fmt.Errorf("RELOAD answered %q", reply)
	}
	return err
}

// setCap writes the memory cap of clamd's cgroup, v2 or v1.
func setCap(t *testing.T, cg string, limit int64) {
	t.Helper()
	file := filepath.Join(cg, "memory.max")
	if _, err := os.Stat(file); err != nil {
		file = filepath.Join(cg, "memory.limit_in_bytes")
	}
	if err := os.WriteFile(file, []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
		t.Fatalf("cap %s at %d: %v", cg, limit, err)
	}
}

func confHas(t *testing.T, s *sandboxed, line string) {
	t.Helper()
	conf, err := os.ReadFile(s.e.confPath())
	if err != nil || !strings.Contains(string(conf), "\n"+line+"\n") {
		t.Fatalf("clamd.conf lacks %q: %v\n%s", line, err, conf)
	}
}
