package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestGatewayServiceUser: the packaged unit's User= and Group=, overridden
// by drop-ins in name order, a drop-in in /etc hiding its namesake in
// /lib, SupplementaryGroups= accumulating until an empty assignment.
func TestGatewayServiceUser(t *testing.T) {
	root := t.TempDir()
	put := func(p, text string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if su, err := GatewayServiceUser(root); err != nil || su.User != "" {
		t.Fatalf("no unit: %+v %v", su, err)
	}
	put("/lib/systemd/system/clamgate.service", "[Service]\nUser=clamgate\nGroup=clamgate\nSupplementaryGroups=a\n")
	put("/lib/systemd/system/clamgate.service.d/10-x.conf", "[Service]\nUser=ignored\n")
	put("/etc/systemd/system/clamgate.service.d/10-x.conf", "[Service]\nSupplementaryGroups=b\n")
	put("/etc/systemd/system/clamgate.service.d/20-y.conf", "[Service]\nSupplementaryGroups=\nSupplementaryGroups=c d\nGroup=mail\n")
	su, err := GatewayServiceUser(root)
	if err != nil {
		t.Fatal(err)
	}
	if su.User != "clamgate" || su.Group != "mail" || !slices.Equal(su.Supplementary, []string{"c", "d"}) {
		t.Errorf("got %+v", su)
	}
	want := []string{"/lib/systemd/system/clamgate.service", "/etc/systemd/system/clamgate.service.d/10-x.conf", "/etc/systemd/system/clamgate.service.d/20-y.conf"}
	if !slices.Equal(su.Files, want) {
		t.Errorf("files %v, want %v", su.Files, want)
	}
}
