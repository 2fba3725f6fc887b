package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorOffline runs `clamgate doctor --root` on a tree with the
// Wants= trap: only the file checks run, and the trap makes it exit 2.
func TestDoctorOffline(t *testing.T) {
	root := t.TempDir()
	unit := filepath.Join(root, "usr/lib/systemd/system/amavisd.service")
	must(t, os.MkdirAll(filepath.Dir(unit), 0o755))
	must(t, os.WriteFile(unit, []byte("[Unit]\nWants=clamd@amavisd.service\n"), 0o644))
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"doctor", "--json", "--root", root}, &out, &errb)
	if code != 2 {
		t.Fatalf("exit %d, want 2; %s", code, errb.String())
	}
	var rep struct {
		Checks  []struct{ ID, Status, Fix string }
		Summary struct{ Pass, Warn, Fail int }
	}
	must(t, json.Unmarshal(out.Bytes(), &rep))
	got := map[string]string{}
	for _, c := range rep.Checks {
		got[c.ID] = c.Status
	}
	if got["units-wants"] != "fail" || got["units-masked"] != "fail" || got["database"] != "fail" {
		t.Errorf("statuses %v", got)
	}
	if _, ran := got["clamd-nonroot"]; ran {
		t.Error("process checks ran on a tree")
	}
	out.Reset()
	Main(context.Background(), []string{"doctor", "--root", root}, &out, &errb)
	if !strings.Contains(out.String(), "offline (--root)") || strings.Contains(out.String(), "\x1b[") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestDoctorUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"doctor", "extra"}, &out, &errb); code != 2 {
		t.Errorf("exit %d for an extra argument", code)
	}
	// The hidden probe mode always answers one JSON object.
	out.Reset()
	Main(context.Background(), []string{"doctor", "__probe", "unix", "/nonexistent/x.sock", "ping"}, &out, &errb)
	if !strings.Contains(out.String(), `"error":`) || !strings.Contains(out.String(), "no such file") {
		t.Errorf("probe output %q", out.String())
	}
}
