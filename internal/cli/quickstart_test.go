package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// quickStart runs the README's two steps, exactly: scripts/run.sh, then
// bin/clamgate doctor once EICAR scans. It runs in namespaces of its own
// (pid, so that doctor judges this clamd and not another test's; network,
// so that run.sh's fixed ports are free; mount, for a private
// /run/clamgate) and prints doctor's JSON report last.
const quickStart = `set -eu
ip link set lo up
mount -t tmpfs tmpfs /run/clamgate
cd "$REPO"
scripts/run.sh > "$OUT/run.log" 2>&1 &
printf '%s' "$EICAR" > "$OUT/eicar.com"
for i in $(seq 1 600); do
  code=0; bin/clamgate scan --quiet --address unix:/run/clamgate/clamd.sock "$OUT/eicar.com" >/dev/null 2>&1 || code=$?
  [ "$code" = 1 ] && break
  sleep 1
done
[ "$code" = 1 ] || { echo "EICAR not found: exit $code" >&2; cat "$OUT/run.log" >&2; exit 1; }
bin/clamgate doctor --json || true
`

// TestQuickStartDoctor: after scripts/run.sh, every clamd row of doctor
// passes (the managed clamd is sandboxed) and the image row recognises
// the managed engine.
func TestQuickStartDoctor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the quick start runs as root")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/clamgate", 0o755); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount-proc", "--net", "--mount", "--propagation", "private", "bash", "-c", quickStart)
	cmd.Env = append(os.Environ(), "REPO="+repo, "OUT="+out, "EICAR="+testenv.EICAR)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("quick start: %v\n%s", err, stderr.String())
	}
	var report struct {
		Checks []struct{ ID, Status, Measured string }
	}
	if err := json.Unmarshal(stdout, &report); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, stdout)
	}
	rows := 0
	for _, c := range report.Checks {
		if strings.HasPrefix(c.ID, "clamd-") || c.ID == "image-digest" {
			rows++
			t.Logf("%-16s %s: %s", c.ID, c.Status, c.Measured)
			if c.Status != "pass" {
				t.Errorf("%s after the quick start: %s (%s)", c.ID, c.Status, c.Measured)
			}
		}
	}
	if rows < 9 {
		t.Errorf("only %d clamd rows in doctor's report", rows)
	}
}
