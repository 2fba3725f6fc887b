package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// HelperMain is the engine-exec command: it applies the Spec the engine
// put in its environment and execs the program. It returns only on
// failure, with the exit code.
func HelperMain(stderr io.Writer) int {
	spec, err := specFromEnv()
	if err == nil {
		err = apply(spec)
	}
	fmt.Fprintf(stderr, "clamgate engine-exec: %v\n", err)
	return 126
}

// apply runs on one locked thread: every attribute set here is the
// thread's own, and execve carries this thread's over to the program.
func apply(s *Spec) error {
	runtime.LockOSThread()
	steps := []struct {
		name string
		on   bool
		do   func(*Spec) error
	}{
		{"memory cgroup", s.Cgroup != "", joinCgroup},
		{"rlimits", len(s.Rlimits) > 0, setRlimits},
	}
	for _, st := range steps {
		if st.on {
			if err := st.do(s); err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
		}
	}
	// The ruleset opens its paths now, while the helper may still read
	// them; it is enforced only after the user is dropped.
	ruleset, flags := -1, uint32(0)
	if s.Landlock {
		var err error
		if ruleset, flags, err = landlockRuleset(s); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
	}
	if err := dropPrivileges(s); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if ruleset >= 0 {
		if err := ll.LandlockRestrictSelf(ruleset, flags); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
		unix.Close(ruleset)
	}
	if s.Probe != nil {
		return probe(s)
	}
	if s.Seccomp {
		if err := loadSeccomp(); err != nil {
			return fmt.Errorf("seccomp: %w", err)
		}
	}
	return fmt.Errorf("exec %s: %w", s.Path, unix.Exec(s.Path, s.Args, s.Env))
}

// probe tries each access and exits 0 when all work; otherwise it
// returns the list of refusals (the helper exits non-zero with it).
func probe(s *Spec) error {
	var refused []string
	uid, gid := os.Getuid(), os.Getgid()
	for _, a := range s.Probe {
		if err := try(a); err != nil {
			right := "read (r)"
			switch {
			case a.Dir && a.Write:
				right = "write and search (wx) on the directory"
			case a.Dir:
				right = "read and search (rx) on the directory"
			}
			refused = append(refused, fmt.Sprintf("%s: uid %d gid %d lacks %s (%v)", a.Path, uid, gid, right, errors.Unwrap(err)))
		}
	}
	if len(refused) == 0 {
		os.Exit(0)
	}
	return errors.New(strings.Join(refused, "; "))
}

func try(a Access) error {
	if !a.Dir {
		f, err := os.Open(a.Path)
		if err == nil {
			_, err = f.Read(make([]byte, 1))
			f.Close()
			if err == io.EOF {
				err = nil
			}
		}
		return err
	}
	if a.Write {
		f, err := os.CreateTemp(a.Path, ".probe-*")
		if err != nil {
			return err
		}
		f.Close()
		return os.Remove(f.Name())
	}
	_, err := os.ReadDir(a.Path)
	return err
}

func joinCgroup(s *Spec) error {
	return os.WriteFile(s.Cgroup+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0)
}

func setRlimits(s *Spec) error {
	for _, r := range s.Rlimits {
		if err := unix.Setrlimit(r.Resource, &unix.Rlimit{Cur: r.Value, Max: r.Value}); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	return nil
}

// dropPrivileges empties the capability sets before the user changes:
// setuid clears the effective and permitted sets but not the bounding
// set, and once CAP_SETPCAP is gone the bounding set can no longer shrink.
func dropPrivileges(s *Spec) error {
	if s.Caps {
		if err := dropBounding(); err != nil {
			return fmt.Errorf("capabilities: %w", err)
		}
	}
	if s.Drop {
		if err := setIDs(s.UID, s.GID); err != nil {
			return fmt.Errorf("user %d:%d: %w", s.UID, s.GID, err)
		}
	}
	if s.Caps {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var none [2]unix.CapUserData
		if err := unix.Capset(&hdr, &none[0]); err != nil {
			return fmt.Errorf("capabilities: capset: %w", err)
		}
	}
	// The kernel clears the parent-death signal when the credentials
	// change: set it again so that clamd dies with the gateway.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	if os.Getppid() == 1 {
		return fmt.Errorf("the gateway is gone")
	}
	return nil
}

func dropBounding() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %d from the bounding set: %w", c, err)
		}
	}
	return unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
}

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// setIDs changes this thread's identity only (raw system calls; the Go
// wrappers change every thread's), then checks that no way back is left.
func setIDs(uid, gid int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
	}
	r, e, s := unix.Getresuid()
	if r != uid || e != uid || s != uid {
		return fmt.Errorf("still uid %d/%d/%d after setresuid", r, e, s)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0); uid != 0 && errno == 0 {
		return fmt.Errorf("could become root again")
	}
	return nil
}

// landlockRuleset allows the database read-only, the state directory
// read-write (no execution), the system files clamd reads to start, and
// execution of clamd alone. Every TCP bind and connect is handled and so
// denied: clamd needs none, and the network namespace already has none.
func landlockRuleset(s *Spec) (int, uint32, error) {
	const (
		read  = ll.AccessFSReadFile | ll.AccessFSReadDir
		write = ll.AccessFSWriteFile | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile | ll.AccessFSMakeDir |
			ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSTruncate
	)
	rules := []landlock.Rule{
		landlock.PathAccess(read, s.ReadOnly...),
		landlock.PathAccess(read|write, s.Writable...),
		landlock.ROFiles(s.System...).IgnoreIfMissing(),
		landlock.PathAccess(ll.AccessFSExecute|ll.AccessFSReadFile, s.Exec...),
	}
	return landlock.V7.BestEffort().NewRulesetFD(rules...)
}
