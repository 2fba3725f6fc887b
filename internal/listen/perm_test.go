package listen

import (
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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
	if err := Repermission(l, old, next); err != nil {
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
	if err := Repermission(l, next, Spec{Address: "tcp:127.0.0.1:1", Mode: 0o600}); err != nil {
		t.Errorf("tcp: %v", err)
	}
}

// TestRepermissionSwappedSocket is issue 23's chmod attack: a user who may
// write the socket's directory (not root) swaps the socket for a link to a
// root 0600 file, then for a socket of its own; the reload that changes
// the mode must change neither, and say why.
func TestRepermissionSwappedSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the attack is on clamgate running as root")
	}
	const name = "cgrperm"
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil && !strings.Contains(string(out), "already exists") {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	top := shortDir(t)
	vault := filepath.Join(top, "vault")
	if err := os.Mkdir(vault, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(vault, "secret") // stands for a root 0600 file in /etc
	if err := os.WriteFile(victim, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(top, "sockets") // the attacker may write here
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gw.sock")
	old := Spec{Address: "unix:" + path, Mode: 0o600, UID: -1, GID: -1}
	l, err := Listen(old)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	next := Spec{Address: old.Address, Mode: 0o666, UID: -1, GID: -1}
	for _, swap := range []struct{ name, script string }{
		{"link", "mv gw.sock gw.old && ln -s " + victim + " gw.sock"},
		{"own socket", "rm -f gw.sock && python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"gw.sock\")'"},
	} {
		cmd := exec.Command("setpriv", "--reuid="+u.Uid, "--regid="+u.Gid, "--clear-groups", "sh", "-c", swap.script)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: swapping as %s: %v\n%s", swap.name, name, err, out)
		}
		err := Repermission(l, old, next)
		t.Logf("%s: reload's re-permission: %v", swap.name, err)
		if err == nil {
			t.Errorf("%s: re-permission went through a swapped name", swap.name)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(victim, &st); err != nil || st.Mode&0o7777 != 0o600 || st.Uid != 0 {
			t.Errorf("%s: %s is now %o uid %d (%v)", swap.name, victim, st.Mode&0o7777, st.Uid, err)
		}
		if err := syscall.Lstat(path, &st); err == nil && st.Mode&0o7777 == 0o666 {
			t.Errorf("%s: the swapped-in name got mode 0666", swap.name)
		}
	}
}

// TestCheckInherited: a socket systemd bound with another mode, owner or
// group than its listener's is reported (the gateway logs it).
func TestCheckInherited(t *testing.T) {
	path := filepath.Join(shortDir(t), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(path, 0o660); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Address: "unix:" + path, Mode: 0o660, UID: -1, GID: -1}
	if err := CheckInherited(spec); err != nil {
		t.Errorf("same mode: %v", err)
	}
	for _, s := range []Spec{
		{Address: spec.Address, Mode: 0o600, UID: -1, GID: -1},
		{Address: spec.Address, Mode: 0o660, UID: os.Geteuid() + 1, GID: -1},
		{Address: spec.Address, Mode: 0o660, UID: -1, GID: os.Getegid() + 1},
	} {
		if err := CheckInherited(s); err == nil {
			t.Errorf("%+v: no difference reported", s)
		}
	}
	if err := CheckInherited(Spec{Address: "tcp:127.0.0.1:1"}); err != nil {
		t.Errorf("tcp: %v", err)
	}
}
