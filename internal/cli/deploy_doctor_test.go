package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// TestDoctorAfterDeploy runs doctor offline on a host tree that deploy has
// just written, with either engine: the checks deploy is meant to satisfy
// must pass.
func TestDoctorAfterDeploy(t *testing.T) {
	for _, engine := range []string{"container", "unit"} {
		t.Run(engine, func(t *testing.T) { doctorAfterDeploy(t, engine) })
	}
}

func doctorAfterDeploy(t *testing.T, engine string) {
	root := debianTree(t)
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"deploy", "apply", "--root", root, "--engine", engine}, &out, &errOut); code != 0 {
		t.Fatalf("deploy apply: %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	Main(context.Background(), []string{"doctor", "--root", root, "--json"}, &out, &errOut)
	var report struct {
		Checks []struct{ ID, Status, Measured string }
	}
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out.String())
	}
	want := map[string]bool{"config": true, "units-masked": true, "units-wants": true, "amavis-scanner": true, "unit-exposure": true, "image-digest": true}
	for _, c := range report.Checks {
		if want[c.ID] {
			delete(want, c.ID)
			if c.Status != "pass" {
				t.Errorf("%s after deploy: %s (%s)", c.ID, c.Status, c.Measured)
			}
		}
	}
	for id := range want {
		t.Errorf("doctor did not run %s", id)
	}
}
