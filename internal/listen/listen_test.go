package listen

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "cgl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestUnixSocketModeOwnerAndCleanup(t *testing.T) {
	path := filepath.Join(shortDir(t), "s.sock")
	l, err := Listen(Spec{Address: "unix:" + path, Mode: 0o640, UID: -1, GID: 65534})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o640 || st.Gid != 65534 {
		t.Errorf("socket %v gid %d", fi.Mode(), st.Gid)
	}
	if leftovers, _ := filepath.Glob(path + ".*"); len(leftovers) != 0 {
		t.Errorf("temporary names left: %v", leftovers)
	}
	// A second gateway must not steal a live socket.
	if _, err := Listen(Spec{Address: "unix:" + path, Mode: 0o600, UID: -1, GID: -1}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	l.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after close: %v", err)
	}
}

func TestStaleSocketReplacedButNotAFile(t *testing.T) {
	dir := shortDir(t)
	stale := filepath.Join(dir, "stale.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close() // leaves the socket file, as a crashed process would
	l, err := Listen(Spec{Address: "unix:" + stale, Mode: 0o600, UID: -1, GID: -1})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Spec{Address: "unix:" + file, Mode: 0o600, UID: -1, GID: -1}); err == nil {
		t.Error("a regular file was replaced by a socket")
	}
}

func TestTCPLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:0": true, "[::1]:0": true, "localhost:0": true,
		"0.0.0.0:0": false, ":0": false, "[::]:0": false,
	} {
		err := CheckTCP(addr, false)
		if (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if err := CheckTCP("0.0.0.0:0", true); err != nil {
		t.Errorf("explicitly allowed: %v", err)
	}
}

// The kernel's name for the socket is its final path: peers' errors,
// getsockname and /proc/net/unix never show a temporary name.
func TestUnixSocketKernelNameIsFinal(t *testing.T) {
	path := filepath.Join(shortDir(t), "final.sock")
	l, err := Listen(Spec{Address: "unix:" + path, Mode: 0o600, UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Addr().String(); got != path {
		t.Errorf("listener address %q, want %q", got, path)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteAddr().String(); got != path {
		t.Errorf("peer sees %q, want %q", got, path)
	}
	table, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(table), "\n") {
		if strings.Contains(line, filepath.Dir(path)) && !strings.HasSuffix(line, " "+path) {
			t.Errorf("/proc/net/unix lists %q", line)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
