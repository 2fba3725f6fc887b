package policy

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// HardlinkWarning says why roots are not enough when the kernel lets any
// user hard-link files it cannot read (fs.protected_hardlinks = 0): a
// client could link such a file into its root and have the gateway read
// it. "" when the kernel refuses those links, or when it cannot be read.
func HardlinkWarning() string { return hardlinkWarning("/proc/sys/fs/protected_hardlinks") }

func hardlinkWarning(sysctl string) string {
	b, err := os.ReadFile(sysctl)
	if err != nil || strings.TrimSpace(string(b)) != "0" {
		return ""
	}
	return "fs.protected_hardlinks is 0: a client can hard-link into its root a file it cannot read, and have it scanned; set it to 1 (sysctl)"
}

// maxLinks is the kernel's own bound on symlinks in one lookup.
const maxLinks = 40

// OpenRoot opens the directory dir once, to be held for the gateway's life.
// The path is resolved here one component at a time, so that each step can
// be checked: a directory on the way that a non-root user could write lets
// that user replace what follows it (a rename while the gateway is
// stopped, and the next start opens whatever now stands there). Such a
// path is refused unless allowWritable is set; even then, no symlink may
// follow such a directory, so the user can only put a real directory of
// its own where the root was, never a link to "/". The gateway's own uid
// counts as root: it can read the files anyway.
func OpenRoot(dir string, allowWritable bool) (*Root, error) {
	if !path.IsAbs(dir) {
		return nil, fmt.Errorf("root %q is not an absolute path", dir)
	}
	r := &resolver{self: uint32(os.Geteuid())}
	fd, err := r.resolve(dir)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
	}
	if r.writable != "" && !allowWritable {
		unix.Close(fd)
		return nil, fmt.Errorf("root %s: %s; a user who can write there can replace the root before the gateway starts (set allow_writable_root_ancestors = true in the policy to accept this: clamgate then refuses symlinks below it)", dir, r.writable)
	}
	return &Root{Path: dir, Writable: r.writable, fd: fd}, nil
}

// resolver walks a path as the kernel would, keeping a descriptor per
// directory, and notes the first directory a non-root user can change.
type resolver struct {
	self     uint32
	stack    []int    // O_PATH descriptors, "/" first
	names    []string // their paths, for messages
	writable string   // why the path is not safe from other users; "" = it is
}

func (r *resolver) resolve(dir string) (int, error) {
	rootfd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	r.stack, r.names = []int{rootfd}, []string{"/"}
	defer r.closeAll()
	todo := split(dir)
	for links := 0; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			r.pop()
			continue
		}
		target, err := r.step(name)
		if err != nil {
			return -1, err
		}
		if target == "" {
			continue
		}
		if links++; links > maxLinks {
			return -1, unix.ELOOP
		}
		if strings.HasPrefix(target, "/") {
			for len(r.stack) > 1 {
				r.pop()
			}
		}
		todo = append(split(target), todo...)
	}
	top := r.stack[len(r.stack)-1]
	r.stack = r.stack[:len(r.stack)-1]
	return top, nil
}

// step goes down into name, or returns the target when name is a symlink.
func (r *resolver) step(name string) (target string, err error) {
	parent, where := r.stack[len(r.stack)-1], path.Join(r.names[len(r.names)-1], name)
	fd, err := unix.Openat(parent, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: where, Err: err}
	}
	var pst, st unix.Stat_t
	if err := unix.Fstat(parent, &pst); err != nil {
		unix.Close(fd)
		return "", err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return "", err
	}
	if why := r.replaceable(&pst, &st); why != "" && r.writable == "" {
		r.writable = fmt.Sprintf("%s %s", r.names[len(r.names)-1], why)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		r.stack, r.names = append(r.stack, fd), append(r.names, where)
		return "", nil
	case unix.S_IFLNK:
		unix.Close(fd)
		if r.writable != "" {
			return "", fmt.Errorf("%s is a symlink, and %s", where, r.writable)
		}
		target, err := readlinkat(parent, name)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: where, Err: err}
		}
		return target, nil
	default:
		unix.Close(fd)
		return "", &os.PathError{Op: "open", Path: where, Err: unix.ENOTDIR}
	}
}

// replaceable says why a user other than root (or the gateway) could
// rename or remove the entry st in the directory dir, or "" if none can.
// Group write counts whatever the group (an ACL granting write to anyone
// shows there too); the sticky bit protects entries only other users own.
func (r *resolver) replaceable(dir, st *unix.Stat_t) string {
	trusted := func(uid uint32) bool { return uid == 0 || uid == r.self }
	switch {
	case !trusted(dir.Uid):
		return fmt.Sprintf("is owned by uid %d", dir.Uid)
	case dir.Mode&0o022 == 0:
		return ""
	case dir.Mode&unix.S_ISVTX != 0 && trusted(st.Uid):
		return ""
	default:
		return fmt.Sprintf("is writable by group %d or others (mode %04o)", dir.Gid, dir.Mode&0o7777)
	}
}

func (r *resolver) pop() {
	if len(r.stack) > 1 {
		unix.Close(r.stack[len(r.stack)-1])
		r.stack, r.names = r.stack[:len(r.stack)-1], r.names[:len(r.names)-1]
	}
}

func (r *resolver) closeAll() {
	for _, fd := range r.stack {
		unix.Close(fd)
	}
}

func split(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
