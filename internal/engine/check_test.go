package engine

import (
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
)

// TestCheckUser: serve refuses a missing engine user, one of another
// daemon's, and one another process runs as; it takes a user of its own.
func TestCheckUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the engine's user is chosen only when clamgate is root")
	}
	for _, tc := range []struct{ user, want string }{
		{"", "is empty"},
		{"clamgate-no-such-user-42", "does not exist: create it"},
		{"root", "another daemon's"},
		{"nobody", "another daemon's"},
		{testUser, ""},
	} {
		_, _, err := CheckUser(tc.user)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.user, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want %q", tc.user, err, tc.want)
		}
	}
	if _, err := user.Lookup("clamav"); err == nil {
		if _, _, err := CheckUser("clamav"); err == nil || !strings.Contains(err.Error(), "another daemon's") {
			t.Errorf("clamav, freshclam's user, accepted: %v", err)
		}
	}
	// A process of the engine's uid that is not a clamd: the uid is shared.
	cmd := asEngineUserCmd(t, "exec sleep 30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var err error
	for range 50 { // until setpriv has become the user
		if _, _, err = CheckUser(testUser); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "is shared: process") {
		t.Errorf("a user another process runs as: %v", err)
	}
}

// TestResolveDatabase: the built-in test database only by name; an empty
// directory is an error naming it and both ways out.
func TestResolveDatabase(t *testing.T) {
	dir := shortTempDir(t)
	if db, builtin, err := ResolveDatabase(config.Engine{StateDir: dir, Database: TestDatabase}); err != nil || !builtin || db != filepath.Join(dir, "testdb") {
		t.Errorf("test: %s %v %v", db, builtin, err)
	}
	empty := filepath.Join(dir, "empty")
	must(t, os.Mkdir(empty, 0o755))
	_, builtin, err := ResolveDatabase(config.Engine{StateDir: dir, Database: empty})
	if err == nil || builtin || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "freshclam") || !strings.Contains(err.Error(), `database = "test"`) {
		t.Errorf("empty directory: %v (builtin %v)", err, builtin)
	}
	if err := CheckStart(config.Engine{StateDir: dir, Database: empty, User: rootTestUser()}); err == nil {
		t.Error("CheckStart accepts an empty database")
	}
}

// TestProbeAsEngineUser: a database the engine's user cannot read stops
// the start with the path and the right it lacks, before clamd runs.
func TestProbeAsEngineUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs an engine user other than clamgate's")
	}
	dir := shortTempDir(t)
	db := filepath.Join(dir, "db")
	must(t, writeTestDBTo(db))
	must(t, os.Chmod(db, 0o700)) // root's only
	e := New(config.Engine{Clamd: "/usr/sbin/clamd", StateDir: filepath.Join(dir, "state"), Database: db,
		MaxThreads: 2, StreamMaxLength: 1 << 20, User: testUser, Reload: "frugal"}, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	err := e.Prepare()
	t.Logf("start with an unreadable database: %v", err)
	if err == nil || !strings.Contains(err.Error(), db+": uid") || !strings.Contains(err.Error(), "read and search (rx)") {
		t.Errorf("the unreadable database is not named with the missing right: %v", err)
	}
}

// TestWalkLinks: the state directory's walk follows a root-owned link in
// a directory only root may change (as /var/run -> /run), and no other.
func TestWalkLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root-owned links")
	}
	dir := shortTempDir(t) // root's, 0700
	must(t, os.Mkdir(filepath.Join(dir, "real"), 0o755))
	must(t, os.Symlink("real", filepath.Join(dir, "alias")))
	eng := owner{uid: os.Getuid(), gid: os.Getgid()}
	fd, err := walkDirs(filepath.Join(dir, "alias", "state"), eng)
	if err != nil {
		t.Fatalf("a root link in root's directory: %v", err)
	}
	closeFD(fd)
	if _, err := os.Stat(filepath.Join(dir, "real", "state")); err != nil {
		t.Errorf("not created through the link: %v", err)
	}
	open := filepath.Join(dir, "open")
	must(t, os.Mkdir(open, 0o1777)) // like /tmp: others may plant here
	must(t, os.Chmod(open, 0o1777))
	must(t, os.Symlink(filepath.Join(dir, "real"), filepath.Join(open, "alias")))
	if fd, err := walkDirs(filepath.Join(open, "alias", "state"), eng); err == nil || !strings.Contains(err.Error(), "does not follow it") {
		closeFD(fd)
		t.Errorf("a link in a directory others can write was followed: %v", err)
	}
}

// TestCheckStateDir: config check's look at the state directory's path
// changes nothing, accepts what start-up will create, and names a parent
// the engine's user cannot traverse and a link it will not follow.
func TestCheckStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the engine's user is another user only as root")
	}
	dir := shortTempDir(t) // root's, 0700: not traversable by the engine's user
	check := func(state string) error {
		return CheckStateDir(config.Engine{StateDir: state, User: testUser})
	}
	must(t, os.Chmod(dir, 0o755))
	if err := check(filepath.Join(dir, "a", "b", "state")); err != nil {
		t.Errorf("a path start-up will create: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("the check created something: %v", err)
	}
	closed := filepath.Join(dir, "closed")
	must(t, os.Mkdir(closed, 0o700))
	if err := check(filepath.Join(closed, "state")); err == nil || !strings.Contains(err.Error(), closed+": the engine's user") {
		t.Errorf("a parent closed to the engine's user: %v", err)
	}
	open := filepath.Join(dir, "open")
	must(t, os.Mkdir(open, 0o777))
	must(t, os.Chmod(open, 0o777))
	must(t, os.Symlink(dir, filepath.Join(open, "alias")))
	if err := check(filepath.Join(open, "alias", "state")); err == nil || !strings.Contains(err.Error(), "does not follow it") {
		t.Errorf("a link in a directory others may write: %v", err)
	}
}
