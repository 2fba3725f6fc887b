package identity

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"clamgate/internal/listen"
	"clamgate/internal/policy"
)

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "cgi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPeerCredentials(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	l, err := listen.Listen(listen.Spec{Address: "unix:" + path, Mode: 0o600, UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("unix", path)
		if err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := Of(c, "test")
	peer := id.Peer
	if !peer.HasCreds || peer.UID != uint32(os.Getuid()) || peer.PID != int32(os.Getpid()) {
		t.Errorf("peer %+v", peer)
	}
}

// A peer with more supplementary groups than a first guess of the buffer
// still has all of them read from the socket (no /proc fallback, which
// races with pid reuse).
func TestPeerGroupsMany(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts a peer with other credentials")
	}
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil && os.Getenv("CI") != "" { // identity's tests cannot use testenv.MissingPeer: testenv reaches the gateway
		t.Fatal("/usr/bin/python3 is not installed: apt-get install python3 (CI is set: no skip)")
	} else if err != nil {
		t.Skip("/usr/bin/python3 is not installed: apt-get install python3")
	}
	dir := shortDir(t)
	must(t, os.Chmod(dir, 0o755))
	path := filepath.Join(dir, "g.sock")
	l, err := listen.Listen(listen.Spec{Address: "unix:" + path, Mode: 0o666, UID: -1, GID: -1})
	must(t, err)
	defer l.Close()
	groups := make([]uint32, 300)
	for i := range groups {
		groups[i] = uint32(20000 + i)
	}
	cmd := exec.Command(py, "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(1)", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4242, Groups: groups}}
	must(t, cmd.Start())
	defer cmd.Wait()
	c, err := l.Accept()
	must(t, err)
	defer c.Close()
	peer := Of(c, "test").Peer
	if !peer.HasCreds || peer.UID != 4242 || !slices.Equal(peer.Groups, groups) {
		t.Errorf("peer uid %d, %d groups %v..., want uid 4242 and the 300 groups", peer.UID, len(peer.Groups), peer.Groups[:min(3, len(peer.Groups))])
	}
}

// TestAdmit: a unix peer is admitted by its uid, primary group or a
// supplementary group the kernel reported; a TCP client by its listener
// alone; a unix peer whose credentials could not be read never, whatever
// the policy (it used to pass as a TCP client).
func TestAdmit(t *testing.T) {
	p := &policy.Policy{Name: "mail", UIDs: []uint32{100}, GIDs: []uint32{961}}
	open := &policy.Policy{Name: "open"}
	unread := Identity{Peer: policy.Peer{Listener: "unix:/s"}, unverified: errNoCredentials}
	for _, tc := range []struct {
		id  Identity
		pol *policy.Policy
		ok  bool
	}{
		{Identity{Peer: policy.Peer{HasCreds: true, UID: 100, GID: 100}}, p, true},
		{Identity{Peer: policy.Peer{HasCreds: true, UID: 5, GID: 961}}, p, true},
		{Identity{Peer: policy.Peer{HasCreds: true, UID: 5, GID: 5, Groups: []uint32{7, 961}}}, p, true},
		{Identity{Peer: policy.Peer{HasCreds: true, UID: 5, GID: 5, Groups: []uint32{7}}}, p, false},
		{Identity{Peer: policy.Peer{HasCreds: true, UID: 5, GID: 5}}, p, false}, // no /proc fallback
		{Identity{Peer: policy.Peer{HasCreds: true, UID: 0, GID: 0}}, p, false},
		{Identity{Peer: policy.Peer{HasCreds: true, UID: 5, GID: 5}}, open, true},
		{Identity{Peer: policy.Peer{Remote: "127.0.0.1:4000"}}, p, true}, // TCP: the listener decides
		{unread, p, false},
		{unread, open, false},
	} {
		if err := tc.id.Admit(tc.pol); (err == nil) != tc.ok {
			t.Errorf("%+v by %s: %v", tc.id, tc.pol.Name, err)
		}
	}
}

// notUnixConn is a unix connection the gateway cannot ask the kernel about
// (wrapped, or handed over as something else).
type notUnixConn struct{ net.Conn }

// TestUnreadableCredentialsRefused: a connection on a unix socket whose
// peer credentials cannot be read is refused by every policy.
func TestUnreadableCredentialsRefused(t *testing.T) {
	path := filepath.Join(shortDir(t), "u.sock")
	l, err := listen.Listen(listen.Spec{Address: "unix:" + path, Mode: 0o600, UID: -1, GID: -1})
	must(t, err)
	defer l.Close()
	go func() {
		if c, err := net.Dial("unix", path); err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	c, err := l.Accept()
	must(t, err)
	defer c.Close()
	id := Of(notUnixConn{c}, "unix:"+path)
	if err := id.Admit(&policy.Policy{Name: "open"}); !errors.Is(err, errNoCredentials) {
		t.Errorf("unverified unix peer admitted: %v", err)
	}
}
