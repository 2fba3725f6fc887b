package engine

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"clamgate/internal/rss"
)

// TestReloadOOMFallsBackToFrugal: a managed clamd whose reloads are
// concurrent, in a real memory cgroup capped between what one database
// needs and what two need (the cap measured on this clamd: the peak of a
// start, the peak of a concurrent reload), is killed by the kernel during
// a RELOAD. No scan meanwhile gets OK for EICAR; the engine starts clamd
// again, frugal (ConcurrentDatabaseReload no), serving the new database;
// the next reload is frugal and clamd survives it under the same cap.
func TestReloadOOMFallsBackToFrugal(t *testing.T) {
	s := startSandboxedMode(t, "concurrent")
	cg := s.e.Cgroup()
	if cg == "" {
		t.Skip("no memory cgroup on this host (the engine logged why)")
	}
	peakFile := filepath.Join(cg, "memory.max_usage_in_bytes")
	if _, err := os.Stat(peakFile); err != nil {
		t.Skip("needs cgroup v1's resettable memory.max_usage_in_bytes to place the cap between one and two databases")
	}
	writeSynthetic(t, s.db, 150000) // enough for a second engine to show
	resetPeak := func() { must(t, os.WriteFile(peakFile, []byte("0"), 0)) }
	peak := func() int64 {
		b, err := os.ReadFile(peakFile)
		must(t, err)
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		must(t, err)
		return n
	}
	resetPeak()
	must(t, s.e.Restart(s.ctx))
	must(t, s.e.WaitReady(s.ctx))
	startPeak := peak()
	resetPeak()
	reloadProbe(t, s, 1) // concurrent, room to spare
	reloadPeak := peak()
	if reloadPeak < startPeak+startPeak/8 {
		t.Fatalf("a concurrent reload peaked at %d MiB, a start at %d MiB: too close to place a cap between", reloadPeak>>20, startPeak>>20)
	}
	limit := (startPeak + reloadPeak) / 2
	setCap(t, cg, limit)
	kills, pid := rss.OOMKills(cg), s.e.PID()

	stop := eicarScans(s)
	body := writeProbe(t, s, 2)
	if mode, restart := s.e.Redecide(); mode.Frugal || restart {
		t.Fatalf("before the kill: %+v restart %v", mode, restart)
	}
	start := time.Now()
	must(t, engineReload(s, false))
	for s.e.PID() == pid || s.e.PID() == 0 {
		if time.Since(start) > time.Minute {
			t.Fatalf("clamd (pid %d) not killed and restarted within a minute of RELOAD under a %d MiB cap", pid, limit>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, s.e.WaitReady(s.ctx))
	back := time.Since(start)
	waitFound(t, s, body, 2, "the restart after the OOM kill")
	replies := stop()
	if got := rss.OOMKills(cg); got <= kills {
		t.Fatalf("clamd was restarted, but not for an OOM kill (%d kills, %d before)", got, kills)
	}
	if m := s.e.ReloadMode(); !m.Frugal || m.Basis != "oom" {
		t.Fatalf("after the OOM kill the mode is %+v; want frugal on basis oom", m)
	}
	confHas(t, s, "ConcurrentDatabaseReload no")
	res := reloadProbe(t, s, 3)
	if !res.mode.Frugal || res.restarted {
		t.Fatalf("the reload after the kill: %+v", res)
	}
	failed := 0
	for _, r := range replies {
		switch {
		case strings.HasSuffix(r, "OK"):
			t.Errorf("EICAR answered %q", r)
		case !strings.HasSuffix(r, " FOUND"):
			failed++
		}
	}
	t.Logf("memory cap %d MiB between a start's peak (%d MiB) and a concurrent reload's (%d MiB): RELOAD → OOM kill → clamd serving again, frugal, after %v; %d EICAR scans meanwhile, %d failed closed, 0 OK; the next reload frugal, clamd alive",
		limit>>20, startPeak>>20, reloadPeak>>20, back.Round(time.Millisecond), len(replies), failed)
}

// writeSynthetic adds n random 20-byte body signatures to the database.
func writeSynthetic(t *testing.T, db string, n int) {
	t.Helper()
	var b strings.Builder
	pattern := make([]byte, 20)
	for i := range n {
		rand.Read(pattern)
		fmt.Fprintf(&b, "Clamgate.OOM-%d:0:*:%x\n", i, pattern)
	}
	must(t, os.WriteFile(filepath.Join(db, "synthetic.ndb"), []byte(b.String()), 0o644))
}

// eicarScans scans EICAR in a loop until the returned stop, which returns
// every reply (an error as its text).
func eicarScans(s *sandboxed) (stop func() []string) {
	ctx, cancel := context.WithCancel(s.ctx)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out []string
	wg.Go(func() {
		for ctx.Err() == nil {
			r, err := s.client.Instream(ctx, strings.NewReader(eicar))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r = "error: " + err.Error()
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}
	})
	return func() []string { cancel(); wg.Wait(); return out }
}
