package listen

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRepermission changes an open socket's mode and group in place: a
// connection accepted before goes on, and new ones are still accepted.
func TestRepermission(t *testing.T) {
	path := filepath.Join(shortDir(t), "s.sock")
	old := Spec{Address: "unix:" + path, Mode: 0o666, UID: -1, GID: -1}
	l, err := Listen(old)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	served, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer served.Close()
	next := Spec{Address: old.Address, Mode: 0o640, UID: -1, GID: 65534}
	if err := Repermission(old, next); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || st.Gid != 65534 || int(st.Uid) != os.Geteuid() {
		t.Errorf("socket %v uid %d gid %d, want 0640 gid 65534", fi.Mode(), st.Uid, st.Gid)
	}
	if _, err := before.Write([]byte("x")); err != nil {
		t.Errorf("connection accepted before: %v", err)
	}
	after, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("socket no longer accepts: %v", err)
	}
	after.Close()
	if err := Repermission(next, Spec{Address: "tcp:127.0.0.1:1", Mode: 0o600}); err != nil {
		t.Errorf("tcp: %v", err)
	}
}
