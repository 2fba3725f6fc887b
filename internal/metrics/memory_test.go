package metrics

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEngineMemoryOfThisProcess(t *testing.T) {
	rss, limit, ok := EngineMemory(os.Getpid(), "")
	if !ok {
		t.Fatal("no RSS for the test process")
	}
	// A Go test binary is resident for at least a few MiB and far below 64 GiB.
	if rss < 1<<20 || rss > 64<<30 {
		t.Errorf("rss = %d, implausible", rss)
	}
	if limit < 0 {
		t.Errorf("limit = %d", limit)
	}
	dir, err := cgroupOf(os.Getpid())
	if err != nil {
		t.Skipf("no cgroup v2 here (%v): limit %d unchecked", err, limit)
	}
	if max, err := readInt(filepath.Join(dir, "memory.max")); err == nil && max > 0 && limit > max {
		t.Errorf("limit %d above own cgroup's memory.max %d", limit, max)
	}
	t.Logf("rss %d, cgroup %s, limit %d", rss, dir, limit)
}

func fakeCgroup(t *testing.T, max, current string) string {
	dir := t.TempDir()
	for name, v := range map[string]string{"memory.max": max, "memory.current": current} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestEngineMemoryExplicitCgroup(t *testing.T) {
	dir := fakeCgroup(t, "1073741824", "524288000")
	rss, limit, ok := EngineMemory(os.Getpid(), dir)
	if !ok || limit != 1<<30 || rss < 1<<20 {
		t.Errorf("pid given: rss %d limit %d ok %v; want own VmRSS and the cgroup's cap", rss, limit, ok)
	}
	// An external clamd with unknown pid: the cgroup's own accounting.
	rss, limit, ok = EngineMemory(0, dir)
	if !ok || rss != 524288000 || limit != 1<<30 {
		t.Errorf("no pid: rss %d limit %d ok %v", rss, limit, ok)
	}
}

func TestEngineMemoryUncapped(t *testing.T) {
	_, limit, ok := EngineMemory(0, fakeCgroup(t, "max", "1"))
	if !ok || limit != 0 {
		t.Errorf("limit %d ok %v, want 0 for memory.max=max", limit, ok)
	}
}

func TestEngineMemoryGone(t *testing.T) {
	if _, _, ok := EngineMemory(0, ""); ok {
		t.Error("ok with neither pid nor cgroup")
	}
	if _, _, ok := EngineMemory(0, t.TempDir()); ok {
		t.Error("ok without memory.current")
	}
	if _, _, ok := EngineMemory(1<<22+12345, ""); ok { // above pid_max's ceiling
		t.Error("ok for a pid that cannot exist")
	}
}
