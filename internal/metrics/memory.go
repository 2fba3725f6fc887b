package metrics

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"clamgate/internal/rss"
)

const cgroupRoot = "/sys/fs/cgroup"

// EngineMemory reads the engine's resident memory and the memory cap of its
// cgroup, for SetEngineMemory. With pid > 0 the RSS is VmRSS from
// /proc/PID/status. With pid <= 0 (an external clamd whose pid the gateway
// does not know, but whose cgroup it can read) it falls back to the cgroup's
// memory.current, which also counts page cache and so overstates.
//
// cgroupDir names the engine's cgroup v2 directory; when empty it is found
// from /proc/PID/cgroup. limit is the smallest memory.max on the way up to
// the cgroup root, since any ancestor's cap is the one the OOM killer
// enforces; 0 means uncapped or unknown. ok is false when no RSS could be read.
func EngineMemory(pid int, cgroupDir string) (resident, limit int64, ok bool) {
	if cgroupDir == "" && pid > 0 {
		cgroupDir, _ = cgroupOf(pid)
	}
	if cgroupDir != "" {
		limit = rss.Limit(cgroupDir)
	}
	if pid > 0 {
		n, err := rss.Read(pid)
		return n, limit, err == nil
	}
	if cgroupDir == "" {
		return 0, 0, false
	}
	resident, err := readInt(filepath.Join(cgroupDir, "memory.current"))
	return resident, limit, err == nil
}

// cgroupOf finds the process's cgroup v2 directory from its "0::/path"
// line; on cgroup v1 there is none and no cap is reported.
func cgroupOf(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for line := range bytes.Lines(data) {
		if path, found := strings.CutPrefix(strings.TrimSpace(string(line)), "0::"); found {
			return filepath.Join(cgroupRoot, filepath.Clean("/"+path)), nil
		}
	}
	return "", fmt.Errorf("pid %d: not on cgroup v2", pid)
}

func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}
