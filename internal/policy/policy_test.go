package policy

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestRootFor(t *testing.T) {
	p := &Policy{Roots: []string{"/var/spool/amavisd", "/srv"}}
	tests := []struct {
		path, root, rel string
		ok              bool
	}{
		{"/var/spool/amavisd/tmp/x", "/var/spool/amavisd", "tmp/x", true},
		{"/var/spool/amavisd", "/var/spool/amavisd", ".", true},
		{"/var/spool/amavisd/", "/var/spool/amavisd", ".", true},
		{"/var/spool/amavisdX/x", "", "", false},
		{"/var/spool/amavisd/../../../etc/shadow", "", "", false},
		{"/etc/shadow", "", "", false},
		{"relative/x", "", "", false},
		{"/srv//a/./b", "/srv", "a/b", true},
	}
	for _, tc := range tests {
		root, rel, ok := p.RootFor(tc.path)
		if root != tc.root || rel != tc.rel || ok != tc.ok {
			t.Errorf("%s: got %q %q %v", tc.path, root, rel, ok)
		}
	}
}

func TestAllowCommandAndPeer(t *testing.T) {
	p := &Policy{Name: "mail", Commands: DefaultCommands, UIDs: []uint32{100}, GIDs: []uint32{961}}
	if p.AllowCommand("SHUTDOWN") == nil || p.AllowCommand("RELOAD") == nil || p.AllowCommand("INSTREAM") != nil {
		t.Error("command rights of a client policy")
	}
	admin := &Policy{Name: "ops", Admin: true, Commands: []string{"PING"}}
	if admin.AllowCommand("RELOAD") != nil || admin.AllowCommand("VERSION") == nil {
		t.Error("command rights of an admin policy")
	}
	for _, tc := range []struct {
		peer Peer
		ok   bool
	}{
		{Peer{HasCreds: true, UID: 100, GID: 100}, true},
		{Peer{HasCreds: true, UID: 5, GID: 961}, true},
		{Peer{HasCreds: true, UID: 5, GID: 5, Groups: []uint32{7, 961}}, true},
		{Peer{HasCreds: true, UID: 5, GID: 5, Groups: []uint32{7}}, false},
		{Peer{HasCreds: true, UID: 0, GID: 0}, false},
		{Peer{HasCreds: false}, true}, // TCP: the listener decides
	} {
		if err := p.AllowPeer(tc.peer); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.peer, err)
		}
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
	write(filepath.Join(outside, "secret"), "secret")
	links := map[string]string{
		"abs_in":  filepath.Join(root, "in/file"),
		"rel_in":  "in/file",
		"abs_out": filepath.Join(outside, "secret"),
		"rel_out": "../" + filepath.Base(outside) + "/secret",
		"dir_out": outside,
		"proc":    "/proc/self/root/etc/passwd",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	o, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, tc := range []struct {
		rel  string
		want string // content, or "" for refused
	}{
		{"in/file", "inside"}, {"abs_in", "inside"}, {"rel_in", "inside"},
		{"abs_out", ""}, {"rel_out", ""}, {"dir_out/secret", ""}, {"proc", ""}, {"../" + filepath.Base(outside) + "/secret", ""},
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
			t.Errorf("%s: read %q", tc.rel, b)
		}
	}
}
