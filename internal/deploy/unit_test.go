package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

func unitEngine(o *Options) { o.Engine = KindUnit }

// TestUnitPlanGolden: --engine unit writes the hardened clamd unit and no
// container, the same clamd.conf but for the host's paths, the same masks
// and client snippets, and opens clamd's AppArmor profile to them.
func TestUnitPlanGolden(t *testing.T) {
	for _, host := range []string{"debian", "rocky"} {
		t.Run(host, func(t *testing.T) {
			root := fixture(t, host)
			var out bytes.Buffer
			must(t, plan(t, root, unitEngine).Write(&out))
			golden(t, host+"-unit.plan", out.Bytes())
		})
	}
}

func TestEngineDefault(t *testing.T) {
	root := fixture(t, "debian")
	if k := plan(t, root).Engine.Kind; k != KindContainer {
		t.Errorf("with podman: %s, want the container", k)
	}
	must(t, os.Remove(filepath.Join(root, "usr/bin/podman")))
	p := plan(t, root)
	if p.Engine.Kind != KindUnit {
		t.Errorf("without podman: %s, want the unit", p.Engine.Kind)
	}
	if !strings.Contains(strings.Join(p.Notes, "\n"), "default: no podman on this host") {
		t.Errorf("the plan does not say why the unit:\n%s", strings.Join(p.Notes, "\n"))
	}
	if _, err := Build(Options{Root: root, Engine: "jail"}); err == nil {
		t.Error("--engine jail accepted")
	}
}

func TestUnitApplyIdempotentRollback(t *testing.T) {
	root := fixture(t, "debian")
	before := treeHash(t, root)
	_, err := Apply(plan(t, root, unitEngine), time.Now(), quiet)
	must(t, err)
	if _, err := os.Stat(filepath.Join(root, QuadletFile)); err == nil {
		t.Error("the unit engine wrote the container's Quadlet")
	}
	local, err := os.ReadFile(filepath.Join(root, AppArmorLocal))
	must(t, err)
	if !strings.Contains(string(local), ClamdConf+" r,") {
		t.Errorf("AppArmor local profile:\n%s", local)
	}
	if again := plan(t, root, unitEngine); len(again.Changes) != 0 {
		t.Fatalf("second apply would change %s", again.Changes[0].Path)
	}
	done, err := Rollback(root, quiet)
	must(t, err)
	if len(done) != 1 || treeHash(t, root) != before {
		t.Errorf("rolled back %v; tree restored: %v", done, treeHash(t, root) == before)
	}
}

// TestUnitEngineVerifyAndExposure: the unit passes systemd-analyze verify
// and its exposure is no higher than the container variant's unit's.
func TestUnitEngineVerifyAndExposure(t *testing.T) {
	requireSystemdAnalyze(t)
	root := fixture(t, "debian")
	_, err := Apply(plan(t, root, unitEngine), time.Now(), quiet)
	must(t, err)
	stubs(t, root, GatewayUnit, EngineUnit)
	systemUnits(t, root)
	for _, u := range []string{"clamgate.service", "clamgate-clamd.service"} {
		out, err := execVerify(root, u)
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
	unit := exposure(t, filepath.Join(root, EngineUnit))
	dir := t.TempDir()
	container := plan(t, fixture(t, "debian")).Engine
	plain := filepath.Join(dir, "clamgate-clamd.service")
	must(t, os.WriteFile(plain, []byte(container.PlainUnit()), 0o644))
	ctr := exposure(t, plain)
	t.Logf("exposure: unit engine %.1f, container engine's unit %.1f", unit, ctr)
	if unit > ctr || unit > 2.0 {
		t.Errorf("unit engine exposure %.1f, container %.1f: want <= both and <= 2.0", unit, ctr)
	}
}

func requireSystemdAnalyze(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		testenv.MissingPeer(t, "systemd-analyze", "run scripts/install-deps.sh --test (apt-get install systemd)")
	}
}

func execVerify(root, unit string) ([]byte, error) {
	return exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, unit).CombinedOutput()
}
