package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"clamgate/internal/config"
	"clamgate/internal/sandbox"

	"golang.org/x/sys/unix"
)

// sharedUsers are the users of other daemons found on the hosts clamgate
// serves: clamd must not run as any of them. freshclam (clamav) writes
// the database; amavis, postfix and squid are clients; nobody is everyone's.
var sharedUsers = []string{
	"root", "clamav", "clamgate", "amavis", "postfix", "proxy", "www-data", "nobody", "daemon", "mail", "messagebus",
}

// CheckUser resolves the engine's user and refuses one that is missing or
// shared with another daemon: every process of clamd's uid can read its
// memory (the objects being scanned) and write its state, so the uid must
// be clamd's alone. config check shares it with serve.
func CheckUser(name string) (uid, gid int, err error) {
	if name == "" {
		return 0, 0, fmt.Errorf("[engine] user is empty: clamgate runs as root and never runs clamd as root; create %s (scripts/run.sh and the package do) or name another user of clamd's own", DefaultUser)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("[engine] user %q does not exist: create it as a system user without a shell or home (useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin %s; the package's sysusers file does)", name, name)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if slices.Contains(sharedUsers, name) || uid == 0 {
		return 0, 0, fmt.Errorf("[engine] user %q is another daemon's: its processes could read clamd's memory and change its state; give clamd a user of its own (default %s)", name, DefaultUser)
	}
	if pid, comm, ok := otherProcess(uid); ok {
		return 0, 0, fmt.Errorf("[engine] user %q is shared: process %d (%s) runs as uid %d; clamd's uid must be its alone (default %s)", name, pid, comm, uid, DefaultUser)
	}
	return uid, gid, nil
}

// otherProcess finds a process of uid that is not a clamd (one of the
// gateway's own may still be exiting after a restart).
func otherProcess(uid int) (int, string, bool) {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if !runsAs(filepath.Join("/proc", d.Name(), "status"), uid) {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if c := strings.TrimSpace(string(comm)); c != "clamd" && c != "" {
			return pid, c, true
		}
	}
	return 0, "", false
}

// installClamd copies clamd into the state directory, root's and
// execute-only (0111), and returns the program to run. The kernel makes a
// process that executes a file it may not read non-dumpable: no other
// process of the engine's uid can then open /proc/<clamd>/mem or environ
// or ptrace it, which holds after execve (a PR_SET_DUMPABLE before it
// would not). Only as root: otherwise clamd is the gateway user's anyway.
func (e *Engine) installClamd(dir *stateDir) (string, error) {
	if !e.eng.root {
		return e.cfg.Clamd, nil
	}
	src, err := os.Open(e.cfg.Clamd)
	if err != nil {
		return "", err
	}
	defer src.Close()
	data, err := io.ReadAll(src)
	if err != nil {
		return "", err
	}
	bin, err := dir.rootDir("bin")
	if err != nil {
		return "", err
	}
	defer unix.Close(bin)
	if err := writeFile(bin, "clamd", data, 0o111, 0, 0); err != nil {
		return "", fmt.Errorf("clamd's copy: %w", err)
	}
	return filepath.Join(e.cfg.StateDir, "bin", "clamd"), nil
}

// reachable is what clamd must be able to open as its user: its
// configuration and database read, its socket, log and temporary
// directories written.
func (e *Engine) reachable() []sandbox.Access {
	return []sandbox.Access{
		{Path: e.confPath(), Write: false},
		{Path: e.dbDir, Write: false, Dir: true},
		{Path: e.stateSub(runSub), Write: true, Dir: true},
		{Path: e.stateSub(logSub), Write: true, Dir: true},
		{Path: e.tmpDir(), Write: true, Dir: true},
	}
}

func (o owner) rootUID() int {
	if o.root {
		return 0
	}
	return -1
}

// runsAs reads a process's real, effective, saved and file-system uids
// from its status: /proc/PID itself is root's for a non-dumpable process.
func runsAs(status string, uid int) bool {
	b, err := os.ReadFile(status)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			return slices.Contains(strings.Fields(rest), strconv.Itoa(uid))
		}
	}
	return false
}

// CheckStart is the managed engine's part of serve's start-up checks that
// needs no change to the host: the engine's user (as root), the database
// and the state directory's path (CheckStateDir). config check runs it
// with serve's configuration; serve runs the same functions in Prepare,
// which then also creates the state directory and checks, as the engine's
// user, what clamd must reach.
func CheckStart(cfg config.Engine) error {
	var errs []error
	if os.Geteuid() == 0 {
		if cfg.User == "" {
			cfg.User = DefaultUser
		}
		if _, _, err := CheckUser(cfg.User); err != nil {
			errs = append(errs, err)
		}
	}
	if _, _, err := ResolveDatabase(cfg); err != nil {
		errs = append(errs, err)
	}
	if err := CheckStateDir(cfg); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
