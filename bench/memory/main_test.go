package main

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMemoryBounded streams 64 objects at once through a gateway process
// and checks its resident memory stays far below the data in flight (the
// full 64 x 100 MiB figure is in the README; this is the CI-sized run).
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway and streams 512 MiB")
	}
	bin := filepath.Join(t.TempDir(), "clamgate")
	if out, err := exec.Command("go", "build", "-o", bin, "clamgate/cmd/clamgate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	peak, ok, n, err := Measure(bin, 64, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("64 x 8 MiB: %d/%d clean, gateway peak RSS %.1f MiB", ok, n, float64(peak)/(1<<20))
	if ok != n {
		t.Errorf("%d of %d streams not scanned clean", n-ok, n)
	}
	if peak > 64<<20 {
		t.Errorf("gateway peak RSS %.1f MiB, want < 64 MiB", float64(peak)/(1<<20))
	}
}
