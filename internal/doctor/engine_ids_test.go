package doctor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/deploy"
	"clamgate/internal/doctor"
)

// TestEngineIDs: a tree where the container engine's socket directory
// belongs to uid 100, which passwd gives to messagebus (Debian 12), fails;
// one where it belongs to the mapped uid deploy gives it passes.
func TestEngineIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown the tree's directory")
	}
	for _, c := range []struct {
		uid  int
		want doctor.Status
	}{{100, doctor.Fail}, {deploy.EngineIDBase + 100, doctor.Pass}} {
		root := t.TempDir()
		dir := filepath.Join(root, deploy.EngineDir)
		must(t, os.MkdirAll(dir, 0o750))
		must(t, os.Chown(dir, c.uid, 0))
		must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
		must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nmessagebus:x:100:102::/nonexistent:/usr/sbin/nologin\n"), 0o644))
		unit := filepath.Join(root, "etc/systemd/system", doctor.ClamdPlainUnit)
		must(t, os.MkdirAll(filepath.Dir(unit), 0o755))
		must(t, os.WriteFile(unit, []byte("[Service]\nExecStart=/usr/bin/podman run --name=clamgate-clamd docker.io/clamav/clamav@sha256:"+strings.Repeat("0", 64)+"\n"), 0o644))
		env := doctor.HostEnv(root)
		env.Select = func(id string) bool { return id == "engine-ids" }
		rep := doctor.Run(context.Background(), env)
		if len(rep.Checks) != 1 || rep.Checks[0].Status != c.want {
			t.Errorf("uid %d: %+v, want %v", c.uid, rep.Checks, c.want)
		} else {
			t.Log(fmt.Sprint(c.uid), ": ", rep.Checks[0].Measured)
		}
	}
}
