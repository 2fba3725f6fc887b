package engine

import (
	"strings"
	"testing"
)

const mib = int64(1) << 20

// TestChooseReload: the rule of reload = "auto", 1x RAM when memory is
// short and no stall when it allows, on each basis it can stand on.
func TestChooseReload(t *testing.T) {
	for _, tc := range []struct {
		name                         string
		loaded, resident, cap, avail int64
		frugal                       bool
		basis                        string
	}{
		// need = 2 x 600 + max(128, 150) = 1350 MiB
		{"cap holds two", 600 * mib, 600 * mib, 1400 * mib, 20000 * mib, false, "cgroup"},
		{"cap short by the margin", 600 * mib, 600 * mib, 1300 * mib, 20000 * mib, true, "cgroup"},
		{"host tighter than the cap", 600 * mib, 600 * mib, 4000 * mib, 500 * mib, true, "host"},
		{"no cap, host has room", 600 * mib, 600 * mib, 0, 800 * mib, false, "host"},
		{"no cap, host short", 600 * mib, 600 * mib, 0, 700 * mib, true, "host"},
		// before clamd has loaded: nothing resident yet, need = 2 x 256 + 128
		{"estimate at start", 256 * mib, 0, 640 * mib, 20000 * mib, false, "cgroup"},
		{"nothing known", 600 * mib, 600 * mib, 0, 0, true, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := chooseReload(tc.loaded, tc.resident > 0, tc.resident, tc.cap, tc.avail)
			if m.Frugal != tc.frugal || m.Basis != tc.basis {
				t.Errorf("frugal %v basis %q, want %v %q: %s", m.Frugal, m.Basis, tc.frugal, tc.basis, m.Why)
			}
			if !strings.Contains(m.Why, "MiB margin") {
				t.Errorf("why %q does not show the arithmetic", m.Why)
			}
		})
	}
}
