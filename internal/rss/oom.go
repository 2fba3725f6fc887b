package rss

import "path/filepath"

// OOMKills is how many processes the kernel's OOM killer has killed in the
// memory cgroup dir (v2 memory.events, v1 memory.oom_control); 0 when it
// cannot tell (no such file, or a kernel before 4.13 on v1).
func OOMKills(dir string) int64 {
	for _, f := range []string{"memory.events", "memory.oom_control"} {
		if v, err := statField(filepath.Join(dir, f), "oom_kill"); err == nil {
			return v
		}
	}
	return 0
}
