package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestRootFor(t *testing.T) {
	base := t.TempDir()
	amavis, srv := filepath.Join(base, "amavisd"), filepath.Join(base, "srv")
	for _, d := range []string{amavis, srv} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &Policy{Roots: []string{amavis, srv}}
	if err := p.OpenRoots(); err != nil {
		t.Fatal(err)
	}
	defer p.CloseRoots()
	tests := []struct {
		path, root, rel string
		ok              bool
	}{
		{amavis + "/tmp/x", amavis, "tmp/x", true},
		{amavis, amavis, ".", true},
		{amavis + "/", amavis, ".", true},
		{amavis + "X/x", "", "", false},
		{amavis + "/../../../etc/shadow", "", "", false},
		{"/etc/shadow", "", "", false},
		{"relative/x", "", "", false},
		{srv + "//a/./b", srv, "a/b", true},
		// Not cleaned: the kernel decides where ".." after a symlink goes.
		{amavis + "/lnk/../x", amavis, "lnk/../x", true},
		// Cleaned, it leaves the root: refused whatever lnk is.
		{amavis + "/lnk/../../x", "", "", false},
	}
	for _, tc := range tests {
		root, rel, ok := p.RootFor(tc.path)
		got := ""
		if root != nil {
			got = root.Path
		}
		if got != tc.root || rel != tc.rel || ok != tc.ok {
			t.Errorf("%s: got %q %q %v", tc.path, got, rel, ok)
		}
	}
}

func TestAllowCommand(t *testing.T) {
	p := &Policy{Name: "mail", Commands: DefaultCommands}
	if p.AllowCommand("SHUTDOWN") == nil || p.AllowCommand("RELOAD") == nil || p.AllowCommand("INSTREAM") != nil {
		t.Error("command rights of a client policy")
	}
	admin := &Policy{Name: "ops", Admin: true, Commands: []string{"PING"}}
	if admin.AllowCommand("RELOAD") != nil || admin.AllowCommand("VERSION") == nil {
		t.Error("command rights of an admin policy")
	}
}

func TestOpenerStaysBeneathRoot(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	write := func(p, body string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "in/file"), "inside")
	write(filepath.Join(root, "in/deep/file"), "deep")
	write(filepath.Join(root, "in/x"), "in/x")
	write(filepath.Join(root, "x"), "x")
	write(filepath.Join(outside, "secret"), "secret")
	write(filepath.Join(root, "gone"), "gone")
	deleted, err := os.Open(filepath.Join(root, "gone"))
	if err != nil {
		t.Fatal(err)
	}
	defer deleted.Close()
	if err := os.Remove(filepath.Join(root, "gone")); err != nil { // its /proc link now ends in " (deleted)"
		t.Fatal(err)
	}
	links := map[string]string{
		"abs_in":   filepath.Join(root, "in/file"), // the host's path: not inside the root
		"chroot":   "/in/file",                     // resolved as if the root were /
		"rel_in":   "in/file",
		"abs_out":  filepath.Join(outside, "secret"),
		"rel_out":  "../" + filepath.Base(outside) + "/secret",
		"dir_out":  outside,
		"proc":     "/proc/self/root/etc/passwd",
		"procfd":   fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), deleted.Fd()),
		"deep":     "in/deep",
		"dotdot":   "../../../../../../../x",
		"loop":     "loop",
		"selfroot": fmt.Sprintf("/proc/%d/root%s/x", os.Getpid(), root),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	o, err := OpenRoot(root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, tc := range []struct {
		rel  string
		want string // content, or "" for refused
	}{
		{"in/file", "inside"}, {"chroot", "inside"}, {"rel_in", "inside"},
		{"abs_in", ""}, {"abs_out", ""}, {"rel_out", ""}, {"dir_out/secret", ""}, {"proc", ""},
		{"procfd", ""}, {"selfroot", ""}, {"../" + filepath.Base(outside) + "/secret", ""},
		// ".." after a symlink is the parent of its target, as in the
		// kernel: deep/.. is in, not the root.
		{"deep/../x", "in/x"},
		// A relative link climbing out stops at the root, like chroot.
		{"dotdot", "x"},
	} {
		f, err := o.Open(tc.rel)
		if tc.want == "" {
			if err == nil {
				f.Close()
				t.Errorf("%s: opened, want refused", tc.rel)
			} else if !errors.Is(err, ErrOutsideRoots) {
				t.Errorf("%s: %v, want ErrOutsideRoots", tc.rel, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.rel, err)
			continue
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != tc.want {
			t.Errorf("%s: read %q, want %q", tc.rel, b, tc.want)
		}
	}
	if f, err := o.Open("loop"); err == nil || errors.Is(err, ErrOutsideRoots) {
		t.Errorf("a symlink loop: %v, want ELOOP", err)
		if f != nil {
			f.Close()
		}
	}
}
