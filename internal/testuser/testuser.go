// Package testuser gives a test an unprivileged local user of its own and
// removes it when the test ends, passed or failed, so that a test run
// leaves no account behind on the machine. For _test.go files only.
//
// Each user has a name no other run shares (the prefix, the process id, a
// counter), so that suites running at once on one machine never delete an
// account another is using.
package testuser

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync/atomic"
	"testing"
)

var serial atomic.Int64

// User is a local account created for one test.
type User struct {
	Name     string
	UID, GID int
}

// New creates a system user with a group of its own, no home and no login
// shell, and registers its removal (user and group) with t.Cleanup. It
// skips the test when not run as root.
func New(t testing.TB, prefix string) User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating a local user needs root")
	}
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), serial.Add(1))
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { remove(t, name) })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return User{Name: name, UID: uid, GID: gid}
}

// remove deletes the user and its group. It runs after the cleanups the
// test registered later (processes it started as the user), so a failure
// here means a process outlived its test: that is reported.
func remove(t testing.TB, name string) {
	if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
		t.Errorf("userdel %s: %v\n%s", name, err, out)
	}
	// userdel removes a user's own group only where login.defs says so.
	if exec.Command("getent", "group", name).Run() == nil {
		if out, err := exec.Command("groupdel", name).CombinedOutput(); err != nil {
			t.Errorf("groupdel %s: %v\n%s", name, err, out)
		}
	}
}
