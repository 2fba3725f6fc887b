package rss

import (
	"os"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		want         int64
		ok           bool
	}{
		{"kB", "Name:\tclamd\nVmPeak:\t  900 kB\nVmRSS:\t  1234 kB\nRssAnon:\t1 kB\n", 1234 << 10, true},
		{"tab only", "VmRSS:\t0 kB\n", 0, true},
		{"kernel thread", "Name:\tkthreadd\nUid:\t0\t0\t0\t0\n", 0, false},
		{"garbage", "VmRSS:\tlots\n", 0, false},
		{"similar key", "VmRSSx:\t5 kB\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.status))
			if got != tc.want || (err == nil) != tc.ok {
				t.Errorf("Parse(%q) = %d, %v; want %d, ok %v", tc.status, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestReadSelf(t *testing.T) {
	n, err := Read(os.Getpid())
	if err != nil || n <= 0 {
		t.Fatalf("Read(self) = %d, %v; want a positive size", n, err)
	}
	if _, err := Read(-1); err == nil {
		t.Error("Read(-1) succeeded")
	}
}
