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
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	t.Cleanup(func() { remove(t, name, uid) })
	return User{Name: name, UID: uid, GID: gid}
}

// remove deletes the user and its group. It runs after the cleanups the
// test registered later (processes it started as the user); their
// children may take a moment to follow a parent-death signal, so it waits
// for them a while, then reports and kills what outlived its test.
func remove(t testing.TB, name string, uid int) {
	if left := waitGone(uid, 5*time.Second); len(left) > 0 {
		t.Errorf("processes of %s outlived the test: %v (killed)", name, left)
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		waitGone(uid, 5*time.Second)
	}
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

// waitGone waits until no process runs as uid, or the bound passes; it
// returns the pids still running.
func waitGone(uid int, bound time.Duration) []int {
	deadline := time.Now().Add(bound)
	for {
		left := processesOf(uid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processesOf lists the processes whose real or effective uid is uid.
func processesOf(uid int) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/status")
	var pids []int
	want := strconv.Itoa(uid)
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if ids, ok := strings.CutPrefix(line, "Uid:"); ok {
				if fields := strings.Fields(ids); len(fields) >= 2 && (fields[0] == want || fields[1] == want) {
					pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}
