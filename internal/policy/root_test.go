package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const nobody = 65534

// TestOpenRootAncestors: a root below a directory another user can write
// is refused at start unless the policy accepts it; a symlink below such a
// directory never is.
func TestOpenRootAncestors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give directories to another user")
	}
	base := t.TempDir() // under /tmp: sticky, and base is root's
	mk := func(p string, mode os.FileMode, uid int) string {
		p = filepath.Join(base, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
		return p
	}
	safe := mk("safe/root", 0o755, 0)
	mk("user", 0o755, nobody)
	userRoot := mk("user/root", 0o755, 0)
	mk("group", 0o775, 0)
	groupRoot := mk("group/root", 0o755, 0)
	mk("sticky", os.ModeSticky|0o777, 0)
	stickyRoot := mk("sticky/root", 0o755, 0)
	stickyOthers := mk("sticky/theirs", 0o755, nobody)
	if err := os.Symlink(safe, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(base, "user/swapped")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir      string
		allow    bool
		want     string // error text, "" for opened
		writable bool
	}{
		{safe, false, "", false},
		{filepath.Join(base, "link"), false, "", false}, // a symlink in a directory only root writes
		{stickyRoot, false, "", false},                  // like /tmp/x: only its owner (root) may rename it
		{userRoot, false, "is owned by uid 65534", false},
		{userRoot, true, "", true},
		{groupRoot, false, "is writable by group 0 or others (mode 0775)", false},
		{stickyOthers, false, "is writable by group 0 or others (mode 1777)", false},
		{filepath.Join(base, "user/swapped"), true, "is a symlink", false},
		{filepath.Join(base, "user/swapped/etc"), true, "is a symlink", false},
		{filepath.Join(base, "missing"), true, "no such file", false},
	} {
		r, err := OpenRoot(tc.dir, tc.allow)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s (allow %v): %v, want %q", tc.dir, tc.allow, err, tc.want)
			}
			if err == nil {
				r.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("%s (allow %v): %v", tc.dir, tc.allow, err)
			continue
		}
		if (r.Writable != "") != tc.writable {
			t.Errorf("%s: Writable %q", tc.dir, r.Writable)
		}
		r.Close()
	}
}

// TestRootHeldByDescriptor: renaming the root away and putting a symlink
// to / in its place changes nothing for a root already open.
func TestRootHeldByDescriptor(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mine"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRoot(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Rename(dir, filepath.Join(base, "away")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", dir); err != nil {
		t.Fatal(err)
	}
	if f, err := r.Open("etc/passwd"); err == nil {
		f.Close()
		t.Error("etc/passwd opened through a swapped root")
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etc/passwd: %v, want not found", err)
	}
	f, err := r.Open("mine")
	if err != nil {
		t.Fatalf("the held root lost its own file: %v", err)
	}
	f.Close()
}

func inode(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }

func TestHardlinkWarning(t *testing.T) {
	dir := t.TempDir()
	for value, warn := range map[string]bool{"0\n": true, "1\n": false, "2\n": false} {
		p := filepath.Join(dir, "protected_hardlinks")
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := hardlinkWarning(p); (got != "") != warn {
			t.Errorf("protected_hardlinks %q: %q", value, got)
		}
	}
	if hardlinkWarning(filepath.Join(dir, "missing")) != "" {
		t.Error("a warning without the sysctl")
	}
}
