// Package rss reads a process's resident memory (VmRSS) from
// /proc/PID/status, for the metrics, doctor and the benchmarks alike, and
// the memory it may grow into: its cgroup's cap and the host's
// MemAvailable, from which the gateway picks a database reload mode.
//
// It is hand-written rather than prometheus/procfs's ProcStatus: that one
// parses every field (and fails the whole read on any it dislikes), and
// reports a missing VmRSS (a kernel thread, a zombie) as 0 resident bytes,
// which this package tells apart as an error.
package rss

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Read returns the resident memory of pid in bytes.
func Read(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	n, err := Parse(status)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return n, nil
}

// Parse returns the VmRSS of a /proc/PID/status file in bytes; the kernel
// writes it in kB.
func Parse(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !found {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS (kernel thread or zombie)")
}
