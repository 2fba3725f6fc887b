package rss

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const cgroupRoot = "/sys/fs/cgroup"

// unlimitedV1 is where cgroup v1 reports "no limit" (PAGE_COUNTER_MAX in
// bytes, a little under 1<<63): anything this large is no cap.
const unlimitedV1 = 1 << 62

// Limit is the memory cap in force for the cgroup directory dir, cgroup v1
// or v2, in bytes; 0 means uncapped or unknown. Any ancestor's cap is the
// one the OOM killer enforces, so on v2 it is the smallest memory.max on
// the way up to the cgroup root (a directory outside the root, a test's,
// is read alone) and on v1 the kernel's own hierarchical_memory_limit.
func Limit(dir string) int64 {
	if v, ok := limitV1(dir); ok {
		return v
	}
	var limit int64
	for {
		if v, err := readMax(filepath.Join(dir, "memory.max")); err == nil && v > 0 && (limit == 0 || v < limit) {
			limit = v
		}
		parent := filepath.Dir(dir)
		if !strings.HasPrefix(parent, cgroupRoot) || parent == dir {
			return limit
		}
		dir = parent
	}
}

// limitV1 reads hierarchical_memory_limit from a v1 memory.stat; a v2
// memory.stat has no such line.
func limitV1(dir string) (int64, bool) {
	v, err := statField(filepath.Join(dir, "memory.stat"), "hierarchical_memory_limit")
	if err != nil {
		return 0, false
	}
	if v >= unlimitedV1 {
		return 0, true
	}
	return v, true
}

// readMax reads a v2 memory.max file: "max" (uncapped) is 0.
func readMax(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// Available is the host's MemAvailable in bytes: what can be allocated
// without swapping, page cache that can be dropped included.
func Available() (int64, error) {
	kb, err := statField("/proc/meminfo", "MemAvailable:")
	return kb << 10, err
}

// statField finds "name value [unit]" in a file of such lines.
func statField(path, name string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == name {
			return strconv.ParseInt(fs[1], 10, 64)
		}
	}
	return 0, os.ErrNotExist
}
