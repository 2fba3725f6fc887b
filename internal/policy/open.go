package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrOutsideRoots means a path is not under any root of the client, or a
// symlink inside a root resolves outside it.
var ErrOutsideRoots = errors.New("outside the client's allowed roots")

// Opener opens files for path scans without ever leaving the client's
// roots. The gateway opens them itself and hands clamd the descriptor, so
// clamd needs no access to any client's files.
type Opener struct {
	root string // as configured, for messages
	real string // the root with its own symlinks resolved, as the kernel names it
	fd   int
}

// OpenRoot prepares to open paths beneath root.
func OpenRoot(root string) (*Opener, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Opener{root: root, real: real, fd: fd}, nil
}

// Close releases the root directory.
func (o *Opener) Close() error { return unix.Close(o.fd) }

// Open opens rel (relative to the root) read-only. Symlinks are followed
// only while they stay beneath the root (RESOLVE_BENEATH); /proc magic
// links never are. O_NONBLOCK keeps a FIFO from hanging the gateway; the
// caller checks the file type before scanning.
func (o *Opener) Open(rel string) (*os.File, error) {
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	full := filepath.Join(o.root, rel)
	for {
		fd, err := unix.Openat2(o.fd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.EXDEV {
			return o.openAbsoluteLink(full)
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: full, Err: err}
		}
		return os.NewFile(uintptr(fd), full), nil
	}
}

// openAbsoluteLink handles what RESOLVE_BENEATH refuses outright: a path
// through an absolute symlink. The path is resolved by the kernel into a
// pinned O_PATH descriptor, and the descriptor's real name decides: inside
// the root it is reopened for reading, so no rename in between can swap
// the file; outside, the scan is refused.
func (o *Opener) openAbsoluteLink(full string) (*os.File, error) {
	pfd, err := unix.Open(full, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	defer unix.Close(pfd)
	proc := fmt.Sprintf("/proc/self/fd/%d", pfd)
	real, err := os.Readlink(proc)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	if real != o.real && !strings.HasPrefix(real, strings.TrimSuffix(o.real, "/")+"/") {
		return nil, &os.PathError{Op: "open", Path: full, Err: ErrOutsideRoots}
	}
	fd, err := unix.Open(proc, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return os.NewFile(uintptr(fd), full), nil
}
