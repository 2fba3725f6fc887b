package policy

import (
	"errors"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrOutsideRoots means a path is not under any root of the client, or a
// symlink inside a root resolves outside it.
var ErrOutsideRoots = errors.New("outside the client's allowed roots")

// Root is one directory a client's path scans are confined to. It is held
// as a descriptor from start: every path beneath it is resolved by the
// kernel from that descriptor, so neither a rename of the root nor the text
// of a path can move a scan out of it. Nothing is ever authorised by what a
// path says; path text is kept only to name files in replies.
type Root struct {
	Path string // as configured: how clients name it
	// Writable says which directory above the root a non-root user can
	// write, when AllowWritableRootAncestors accepted that; "" = none.
	Writable string
	// mu keeps Close from releasing fd while an open resolves from it: a
	// descriptor number closed under a running request could be reused by
	// any other directory, and the request would resolve beneath that.
	mu sync.RWMutex
	fd int // O_PATH directory; -1 once closed
}

// ErrRootClosed is what a request still running on a root that a reload
// retired gets: the scan fails closed.
var ErrRootClosed = errors.New("the client's root was closed by a configuration reload")

// Close releases the root's descriptor, once no open is using it.
func (r *Root) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// How files are opened for scanning: O_NONBLOCK keeps a FIFO from hanging
// the gateway (the caller checks the file type before scanning).
const openFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK

// Open opens rel, a path relative to the root, read-only. The kernel
// resolves it as if the root were "/" (RESOLVE_IN_ROOT): an absolute
// symlink names a path inside the root, ".." stops at the root, and ".."
// after a symlink goes to the parent of the symlink's target, as everywhere
// in the kernel. /proc magic links (a process's root, cwd or descriptors)
// are never followed: they lead to files by what they are, not by any path
// beneath the root.
func (r *Root) Open(rel string) (*os.File, error) {
	full := filepath.Join(r.Path, rel)
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.fd < 0 {
		return nil, &os.PathError{Op: "open", Path: full, Err: ErrRootClosed}
	}
	// Beneath first: it succeeds for every path that stays inside without
	// needing chroot-like reinterpretation, and its EXDEV tells apart a
	// path that tried to leave, for the reply.
	fd, err := openat2(r.fd, rel, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_MAGICLINKS)
	if err == unix.EXDEV {
		fd, err = openat2(r.fd, rel, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP || err == unix.EXDEV {
			// The link aimed outside, and nothing answers to its
			// target inside the root.
			err = ErrOutsideRoots
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return os.NewFile(uintptr(fd), full), nil
}

// OpenEntry opens the entry name of dir, a directory beneath the root that
// a walk holds open, read-only. An entry that is not a symlink is opened
// from dir's descriptor, so that the walk stays in the directory it lists
// whatever is renamed meanwhile; a symlink is resolved as Open resolves
// rel, its path from the root. viaLink says the entry was a symlink.
func (r *Root) OpenEntry(dir *os.File, name, rel string) (f *os.File, viaLink bool, err error) {
	fd, err := openat2(int(dir.Fd()), name, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS)
	if err == unix.ELOOP {
		f, err := r.Open(rel)
		return f, true, err
	}
	if err != nil {
		return nil, false, &os.PathError{Op: "open", Path: filepath.Join(r.Path, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(r.Path, rel)), false, nil
}

func openat2(dirfd int, path string, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: openFlags, Resolve: resolve}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(dirfd, path, &how)
		// EAGAIN: a rename raced the lookup (RESOLVE_IN_ROOT and
		// RESOLVE_BENEATH refuse to guess). Retries are bounded: a
		// client renaming in a loop must not hold the walk forever.
		if (err == unix.EINTR || err == unix.EAGAIN) && try < maxRetries {
			continue
		}
		return fd, err
	}
}

const maxRetries = 64
