package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"clamgate/internal/testuser"
)

// TestAttacks runs every attack of issue 14 in this program's list from an
// unprivileged user against a gateway process in front of a real clamd,
// and checks that the gateway stays within the attack's bounds (RSS and
// descriptors gained) and that the authorised client's PING and EICAR scan
// are answered rightly throughout. No timing is asserted.
func TestAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway and runs each attack for seconds")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates the attacker's user and drops to it with setpriv")
	}
	dir := t.TempDir()
	gateway, self := filepath.Join(dir, "clamgate"), filepath.Join(dir, "attack")
	build := map[string]string{gateway: "clamgate/cmd/clamgate", self: "clamgate/bench/attack"}
	if bin := os.Getenv("ATTACK_GATEWAY"); bin != "" { // another build, e.g. main's, to compare
		delete(build, gateway)
		gateway = bin
	}
	for bin, pkg := range build {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	// The attacker's account is this test's own, removed when it ends.
	attacker := testuser.New(t, "cgattacker")
	env, err := StartEnv(gateway, self, attacker.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	for _, a := range attacks {
		t.Run(a.Name, func(t *testing.T) {
			ph := env.Measure(&a, 6*time.Second, Limits{OwnBounds: true})
			t.Logf("RSS %.1f → %.1f MiB, fds %d → %d, %d probes", mib(ph.RSSBase), mib(ph.RSSPeak), ph.FDBase, ph.FDPeak, len(ph.Ping)+len(ph.Eicar))
			if ph.Exceeded != "" {
				t.Errorf("%s: %s", a.What, ph.Exceeded)
			}
			if ph.Failed > 0 || (len(ph.Ping) == 0 && ph.Exceeded == "") {
				t.Errorf("authorised client: %d of %d probes failed, first: %s", ph.Failed, len(ph.Ping)+len(ph.Eicar), ph.FirstFail)
			}
		})
	}
}
