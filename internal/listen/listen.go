// Package listen creates the gateway's client sockets (unix sockets whose
// owner, group and mode the gateway sets, loopback TCP). Who the peer of a
// connection is, is internal/identity's question.
package listen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"clamgate/internal/addr"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
)

// Spec describes one listening socket.
type Spec struct {
	Address string      // "unix:/path" or "tcp:host:port"
	Mode    os.FileMode // unix socket mode
	UID     int         // unix socket owner; -1 keeps the gateway's
	GID     int         // unix socket group; -1 keeps the gateway's
	// AllowNonLoopback must be set explicitly to bind TCP beyond loopback:
	// clamd's protocol has no authentication.
	AllowNonLoopback bool
}

// Listen opens the socket described by spec.
func Listen(spec Spec) (net.Listener, error) {
	a, err := addr.Parse(spec.Address)
	if err != nil {
		return nil, fmt.Errorf("listen address %w", err)
	}
	if a.Network == addr.Unix {
		return listenUnix(a.Address, spec)
	}
	return listenTCP(a.Address, spec.AllowNonLoopback)
}

// CheckTCP refuses addresses beyond loopback unless allowed, so that the
// configuration can be validated before anything is bound.
func CheckTCP(address string, allowNonLoopback bool) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if allowNonLoopback {
		return nil
	}
	ips, err := net.LookupIP(host)
	if host == "" || err != nil {
		return fmt.Errorf("tcp address %q is not loopback (set allow_non_loopback to bind it)", address)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("tcp address %q is not loopback (set allow_non_loopback to bind it)", address)
		}
	}
	return nil
}

func listenTCP(address string, allowNonLoopback bool) (net.Listener, error) {
	if err := CheckTCP(address, allowNonLoopback); err != nil {
		return nil, err
	}
	return net.Listen("tcp", address)
}

// listenUnix binds the final path itself, so that the kernel's name for
// the socket (what getsockname, peers' errors and /proc/net/unix show) is
// that path. The socket file is created with no permissions at all (its
// mode comes from the socket's own, less the umask), gets its owner and
// mode, and only then listens: nobody can connect before, and nobody ever
// finds it with looser rights. No process-wide umask is touched.
func listenUnix(path string, spec Spec) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := unix.Fchmod(fd, 0); err != nil {
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	id, err := ownAndMode(path, spec)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		os.Remove(path)
		return nil, err
	}
	l, err := net.FileListener(f)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return &unixListener{UnixListener: ul, path: path, file: id}, nil
}

// ownAndMode sets the socket file's owner and mode through a descriptor
// that refuses symlinks, so that a name swapped in the directory meanwhile
// is not followed. Linux has no fchmod for such a descriptor; /proc's link
// to it is the usual way.
func ownAndMode(path string, spec Spec) (fileID, error) {
	fd, id, err := openSocketFile(path, fileID{})
	if err != nil {
		return id, err
	}
	defer unix.Close(fd)
	if spec.UID >= 0 || spec.GID >= 0 {
		if err := unix.Fchownat(fd, "", spec.UID, spec.GID, unix.AT_EMPTY_PATH); err != nil {
			return id, &os.PathError{Op: "chown", Path: path, Err: err}
		}
	}
	return id, chmodFD(fd, path, spec.Mode.Perm())
}

// fileID is a socket file's device and inode: what tells the socket
// clamgate bound from a name swapped in its directory later.
type fileID struct{ dev, ino uint64 }

// openSocketFile opens path with O_PATH|O_NOFOLLOW (a link is opened as a
// link, never followed) and checks it is a socket, and when want is set,
// that very socket file.
func openSocketFile(path string, want fileID) (int, fileID, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fileID{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	id := fileID{dev: st.Dev, ino: st.Ino}
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK || (want != fileID{} && id != want) {
		unix.Close(fd)
		return -1, id, fmt.Errorf("%s is not the socket clamgate bound (replaced since?): its rights are left alone", path)
	}
	return fd, id, nil
}

// chmodFD changes the mode of what fd (O_PATH) holds. Linux has no fchmod
// for such a descriptor; /proc's link to it reaches that inode itself.
func chmodFD(fd int, path string, mode os.FileMode) error {
	if err := os.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

// removeStale deletes a socket left by a previous run, but refuses to take
// over one that somebody still serves or a path that is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by another process", path)
	}
	return os.Remove(path)
}

type unixListener struct {
	*net.UnixListener
	path string
	file fileID // the socket file bound at path
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	os.Remove(l.path)
	return err
}

// Inherited returns the listening sockets systemd passed (socket
// activation), by the address they would have in the configuration:
// "tcp:127.0.0.1:1344", "unix:/run/clamgate/amavis.sock". Inheriting its TCP
// sockets lets the hardened unit run without AF_INET and in a private
// network namespace: it never creates a network socket itself.
func Inherited() map[string]net.Listener {
	ls, err := activation.Listeners()
	out := map[string]net.Listener{}
	if err != nil {
		return out
	}
	for _, l := range ls {
		if l != nil {
			out[l.Addr().Network()+":"+l.Addr().String()] = l
		}
	}
	return out
}

// Unread reports whether the client has sent bytes that nobody read yet,
// which closing would turn into a reset.
func Unread(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n > 0
}

// Linger half-closes c and reads what the client still sends, for at most
// d or max bytes, before the caller closes it. Closing with unread data
// makes the kernel reset the connection, and a reset can destroy an answer
// (a refusal, an error) before the client has read it.
func Linger(c net.Conn, d time.Duration, max int64) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, _ = io.CopyN(io.Discard, c, max)
}

// DiscardQueued reads, without waiting, what the client has already sent
// (at most max bytes), so that closing does not turn it into a reset.
func DiscardQueued(c net.Conn, max int) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 4096)
	_ = raw.Read(func(fd uintptr) bool {
		for left := max; left > 0; {
			n, _, err := unix.Recvfrom(int(fd), buf[:min(left, len(buf))], unix.MSG_DONTWAIT)
			if err != nil || n <= 0 {
				break
			}
			left -= n
		}
		return true // done, whatever the socket said: never wait
	})
}
