package engine

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"clamgate/internal/config"

	"golang.org/x/sys/unix"
)

// The state directory is root's (when clamgate is): clamd.conf, the
// built-in test database and clamd's executable copy are written there by
// root through descriptors. The engine's user owns only the three
// directories clamd writes to. It can neither rename nor plant anything
// in the state directory itself, so nothing root touches later can be a
// link it made.
const (
	runSub = "run" // clamd.sock and clamd.pid
	logSub = "log" // clamd.log
	tmpSub = "tmp" // clamd's temporary files
)

// ownTrees are clamgate's own directories: a parent below them that the
// engine's user cannot traverse (an earlier version made /run/clamgate
// 0750) is repaired; any other parent is the administrator's, and a
// missing right there is an error that names it.
var ownTrees = []string{"/run/clamgate", "/var/lib/clamgate"}

// owner is who gets a file or directory: the engine's ids, and whether
// clamgate may chown at all (only as root).
type owner struct {
	uid, gid int
	root     bool
	dry      bool // only look (config check): create, chown and chmod nothing
}

// stateDir is the state directory held open: every change below it goes
// through fd, never through its path.
type stateDir struct {
	path string
	fd   int
	eng  owner
}

func (s *stateDir) Close() error { return unix.Close(s.fd) }

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openStateDir creates or repairs path and its parents, one component at
// a time from "/", each opened relative to its parent's descriptor with
// O_NOFOLLOW: a link is never followed, except a root-owned one in a
// directory only root can change (such as /var/run -> /run).
func openStateDir(path string, eng owner) (*stateDir, error) {
	fd, err := walkDirs(path, eng)
	if err != nil {
		return nil, err
	}
	s := &stateDir{path: path, fd: fd, eng: eng}
	if err := s.claim(); err != nil {
		s.Close()
		return nil, err
	}
	for _, sub := range []string{runSub, logSub, tmpSub} {
		if err := s.engineDir(sub); err != nil {
			s.Close()
			return nil, err
		}
	}
	// An earlier layout kept these directly in the state directory, where
	// the engine's user could replace them with links: remove the names
	// (unlinkat removes a link, never its target).
	for _, old := range []string{"clamd.sock", "clamd.pid", "clamd.log"} {
		_ = unix.Unlinkat(fd, old, 0)
	}
	return s, nil
}

// walkDirs opens path's final directory, creating what is missing.
func walkDirs(path string, eng owner) (int, error) {
	if !filepath.IsAbs(path) {
		return -1, fmt.Errorf("state directory %q is not absolute", path)
	}
	fd, err := unix.Open("/", dirFlags, 0)
	if err != nil {
		return -1, err
	}
	todo := strings.Split(strings.Trim(filepath.Clean(path), "/"), "/")
	at := "/"
	for links := 0; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		if name == "" || name == "." {
			continue
		}
		next, target, err := openChild(fd, at, name, eng.dry)
		if errors.Is(err, errMissing) {
			return fd, nil // start-up creates the rest
		}
		if err == nil && target != "" {
			if links++; links > 16 {
				err = fmt.Errorf("%s: too many links", path)
			} else {
				todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
				if filepath.IsAbs(target) {
					unix.Close(fd)
					fd, at = -1, "/"
					next, err = unix.Open("/", dirFlags, 0)
				} else {
					continue
				}
			}
		} else if err == nil {
			at = filepath.Join(at, name)
			err = letIn(next, at, eng, len(todo) > 0)
		}
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil {
			if next >= 0 {
				unix.Close(next)
			}
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// openChild opens name in the directory dir (at is its path, for
// messages), making it 0755 when missing. A link comes back as its
// target, and only when root owns both it and a directory nobody else may
// write to.
func openChild(dir int, at, name string, dry bool) (int, string, error) {
	p := filepath.Join(at, name)
	fd, err := unix.Openat(dir, name, dirFlags, 0)
	if errors.Is(err, unix.ENOENT) && dry {
		return -1, "", errMissing
	}
	if errors.Is(err, unix.ENOENT) {
		if err = unix.Mkdirat(dir, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, "", &os.PathError{Op: "mkdir", Path: p, Err: err}
		}
		fd, err = unix.Openat(dir, name, dirFlags, 0)
		if err == nil {
			err = unix.Fchmod(fd, 0o755) // whatever the umask
		}
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		target, lerr := trustedLink(dir, at, name)
		return -1, target, lerr
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, "", &os.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, "", nil
}

// errMissing ends a dry walk where the path does not exist yet.
var errMissing = errors.New("missing")

func trustedLink(dir int, at, name string) (string, error) {
	p := filepath.Join(at, name)
	var st, parent unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", fmt.Errorf("%s is not a directory", p)
	}
	if err := unix.Fstat(dir, &parent); err != nil {
		return "", err
	}
	if st.Uid != 0 || parent.Uid != 0 || parent.Mode&0o022 != 0 {
		return "", fmt.Errorf("%s is a link in a directory others can change: clamgate does not follow it", p)
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dir, name, buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: p, Err: err}
	}
	return string(buf[:n]), nil
}

// letIn makes sure the engine's user can traverse a parent of the state
// directory: repaired (o+x, nothing else) in clamgate's own trees,
// otherwise an error naming the directory and the right.
func letIn(fd int, path string, eng owner, parent bool) error {
	if !parent || !eng.root {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if eng.dry {
		if canSearch(&st, eng) || inOwnTree(path) {
			return nil
		}
		return searchError(path, eng)
	}
	if inOwnTree(path) && st.Uid != 0 && !gatewayUser(st.Uid) {
		// Whoever owns it could swap the state directory or the gateway's
		// sockets below it by name: take it back.
		if err := unix.Fchown(fd, 0, 0); err != nil {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
		st.Uid, st.Gid = 0, 0
	}
	if canSearch(&st, eng) {
		return nil
	}
	if !inOwnTree(path) {
		return searchError(path, eng)
	}
	return unix.Fchmod(fd, st.Mode&0o7777|0o001)
}

func searchError(path string, eng owner) error {
	return fmt.Errorf("%s: the engine's user (uid %d) lacks search (x) permission on this directory, a parent of the state directory; grant it (chmod o+x %s) or choose another [engine] state_dir", path, eng.uid, path)
}

// CheckStateDir looks, without changing anything, for what would stop the
// start in the state directory's path: a link clamgate will not follow, a
// parent outside clamgate's own trees the engine's user cannot traverse.
// What is missing is fine (the start creates it). For config check.
func CheckStateDir(cfg config.Engine) error {
	eng := owner{uid: os.Getuid(), gid: os.Getgid(), dry: true}
	if os.Geteuid() == 0 {
		uid, gid, err := CheckUser(or(cfg.User, DefaultUser))
		if err != nil {
			return nil // CheckStart reports the user
		}
		eng = owner{uid: uid, gid: gid, root: true, dry: true}
	}
	fd, err := walkDirs(cfg.StateDir, eng)
	if fd >= 0 {
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// gatewayUser reports whether uid is the packaged gateway's user
// (clamgate), which owns /run/clamgate under the package's tmpfiles.d: a
// run as root must leave it that user's, or the service cannot start
// afterwards (issue 22 item 5).
func gatewayUser(uid uint32) bool {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	return err == nil && u.Username == "clamgate"
}

func canSearch(st *unix.Stat_t, eng owner) bool {
	switch {
	case int(st.Uid) == eng.uid:
		return st.Mode&0o100 != 0
	case int(st.Gid) == eng.gid:
		return st.Mode&0o010 != 0
	}
	return st.Mode&0o001 != 0
}

func inOwnTree(path string) bool {
	for _, t := range ownTrees {
		if path == t || strings.HasPrefix(path, t+"/") {
			return true
		}
	}
	return false
}

// claim makes the state directory root's and 0755 (clamd reads its
// configuration there), whoever an earlier run left it to.
func (s *stateDir) claim() error {
	if s.eng.root {
		if err := unix.Fchown(s.fd, 0, 0); err != nil {
			return &os.PathError{Op: "chown", Path: s.path, Err: err}
		}
	}
	return unix.Fchmod(s.fd, 0o755)
}

// engineDir makes name a directory of the engine's user, 0750. A link or
// a file in its place is removed (the name, not what it points to).
func (s *stateDir) engineDir(name string) error {
	fd, err := s.subdir(name, 0o750)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if s.eng.root {
		if err := unix.Fchown(fd, s.eng.uid, s.eng.gid); err != nil {
			return &os.PathError{Op: "chown", Path: filepath.Join(s.path, name), Err: err}
		}
	}
	return unix.Fchmod(fd, 0o750)
}

// rootDir makes name a directory of root's (clamgate's), emptied of
// anything another user left in it.
func (s *stateDir) rootDir(name string) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(s.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil &&
		(st.Mode&unix.S_IFMT != unix.S_IFDIR || (s.eng.root && st.Uid != 0)) {
		if err := s.remove(name); err != nil {
			return -1, err
		}
	}
	fd, err := s.subdir(name, 0o755)
	if err != nil {
		return -1, err
	}
	return fd, unix.Fchmod(fd, 0o755)
}

// remove deletes name below the state directory. The directory chain is
// root's by now, so os.RemoveAll (which works with *at calls and does not
// follow links) cannot be led out of it.
func (s *stateDir) remove(name string) error {
	return os.RemoveAll(filepath.Join(s.path, name))
}

func (s *stateDir) subdir(name string, mode uint32) (int, error) {
	p := filepath.Join(s.path, name)
	fd, err := unix.Openat(s.fd, name, dirFlags, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		if err := unix.Unlinkat(s.fd, name, 0); err != nil {
			return -1, &os.PathError{Op: "remove", Path: p, Err: err}
		}
		err = unix.ENOENT
	}
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(s.fd, name, mode); err != nil {
			return -1, &os.PathError{Op: "mkdir", Path: p, Err: err}
		}
		fd, err = unix.Openat(s.fd, name, dirFlags, 0)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

// writeFile writes data as name in the directory dir: into a new file
// (O_EXCL, O_NOFOLLOW: never one somebody else made), given its owner and
// mode through its descriptor, then renamed over the old name, which
// replaces a link rather than writing through it.
func writeFile(dir int, name string, data []byte, mode uint32, uid, gid int) error {
	tmp := "." + name + ".new"
	_ = unix.Unlinkat(dir, tmp, 0)
	fd, err := unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), tmp)
	err = func() error {
		if uid >= 0 {
			if err := f.Chown(uid, gid); err != nil {
				return err
			}
		}
		if err := f.Chmod(os.FileMode(mode)); err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dir, tmp, dir, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}
