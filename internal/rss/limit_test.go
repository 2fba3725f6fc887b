package rss

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLimit reads the caps of v1 and v2 cgroup directories as the kernel
// writes them.
func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"v2 capped", map[string]string{"memory.max": "536870912\n"}, 512 << 20},
		{"v2 max", map[string]string{"memory.max": "max\n"}, 0},
		{"v1 capped", map[string]string{"memory.stat": "cache 0\nrss 1\nhierarchical_memory_limit 268435456\n"}, 256 << 20},
		{"v1 unlimited", map[string]string{"memory.stat": "hierarchical_memory_limit 9223372036854771712\n"}, 0},
		{"neither", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, v := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := Limit(dir); got != tc.want {
				t.Errorf("Limit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestAvailable(t *testing.T) {
	n, err := Available()
	if err != nil || n <= 0 {
		t.Fatalf("MemAvailable: %d %v", n, err)
	}
}
