package engine

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
)

// testUser is the engine's user in this package's tests run as root: a
// user of the tests' own, created by TestMain and removed after.
const testUser = "cgeng-enginetest"

// withTestUser creates testUser when root and it is missing, runs the
// tests, and removes the user it created.
func withTestUser(run func() int) int {
	if os.Geteuid() != 0 {
		return run()
	}
	if _, err := user.Lookup(testUser); err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", testUser).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "useradd %s: %v\n%s", testUser, err, out)
			return 1
		}
		defer exec.Command("userdel", testUser).Run()
	}
	return run()
}

// writeTestDBTo writes the built-in database into a plain directory, for
// tests that give clamd a database of their own.
func writeTestDBTo(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return eachTestDBFile(func(name string, data []byte) error {
		return os.WriteFile(filepath.Join(dir, name), data, 0o644)
	})
}

// rootTestUser is the engine user a test names: testUser as root, none
// (the gateway's own) otherwise.
func rootTestUser() string {
	if os.Geteuid() == 0 {
		return testUser
	}
	return ""
}

func closeFD(fd int) {
	if fd >= 0 {
		_ = syscall.Close(fd)
	}
}
