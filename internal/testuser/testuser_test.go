package testuser

import (
	"os/exec"
	"os/user"
	"strconv"
	"testing"
)

// TestNewRemoves: the user and its group exist during the test and are
// gone once its cleanups have run.
func TestNewRemoves(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		u := New(t, "cgtestuser")
		name = u.Name
		if _, err := user.Lookup(u.Name); err != nil || u.UID == 0 {
			t.Fatalf("user %s: %v (uid %d)", u.Name, err, u.UID)
		}
		if _, err := user.LookupGroupId(strconv.Itoa(u.GID)); err != nil {
			t.Fatalf("group of %s: %v", u.Name, err)
		}
	})
	if name == "" {
		t.Skip("inner test skipped")
	}
	if _, err := user.Lookup(name); err == nil {
		t.Errorf("user %s is left after its test", name)
	}
	if exec.Command("getent", "group", name).Run() == nil {
		t.Errorf("group %s is left after its test", name)
	}
}
