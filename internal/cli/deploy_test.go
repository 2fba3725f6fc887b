package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployCommands drives plan, apply, apply, rollback, rollback through
// Main on a copy of the Debian fixture tree.
func TestDeployCommands(t *testing.T) {
	root := debianTree(t)
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), append([]string{"deploy"}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("plan", "--root", root); code != 0 || !strings.Contains(out, "+++ /etc/systemd/system/clamgate.service") {
		t.Fatalf("plan: %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/clamgate")); err == nil {
		t.Fatal("plan wrote")
	}
	if code, out := run("apply", "--root", root); code != 0 || !strings.Contains(out, "applied") {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	if code, out := run("apply", "--root", root); code != 0 || !strings.Contains(out, "nothing to change") {
		t.Fatalf("second apply: %d\n%s", code, out)
	}
	if code, out := run("rollback", "--root", root); code != 0 || !strings.Contains(out, "rolled back") {
		t.Fatalf("rollback: %d\n%s", code, out)
	}
	if code, out := run("rollback", "--root", root); code != 0 || !strings.Contains(out, "nothing to roll back") {
		t.Fatalf("second rollback: %d\n%s", code, out)
	}
	if code, out := run("apply", "--root", root, "--image", "clamav/clamav:stable"); code != 1 || !strings.Contains(out, "--allow-moving-tag") {
		t.Fatalf("moving tag: %d\n%s", code, out)
	}
	if code, _ := run("frobnicate"); code != 2 {
		t.Fatalf("unknown subcommand: %d", code)
	}
}

// debianTree is a copy of deploy's Debian fixture host.
func debianTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must(t, os.CopyFS(root, os.DirFS("../deploy/testdata/debian")))
	return root
}
