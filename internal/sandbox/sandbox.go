package sandbox

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Config is what the engine asks for.
type Config struct {
	Helper  string // the clamgate executable that runs HelperCommand; default: this one
	Program string // clamd
	Args    []string
	Env     []string
	// User clamd runs as. Required when clamgate runs as root (it never
	// runs clamd as root); otherwise empty or clamgate's own user.
	User     string
	Database string // read-only
	StateDir string // read-write: socket, pid file, log, temporary files
	// Writable, when set, narrows the writable part of StateDir to these
	// directories below it; the rest of it is read-only.
	Writable  []string
	MemoryMax int64 // bytes; 0: no memory cgroup
	Log       *slog.Logger
}

// Sandbox starts the confined program, as many times as the engine
// restarts it.
type Sandbox struct {
	cfg    Config
	spec   Spec
	netns  bool
	userns bool
	uid    int
	gid    int
}

// System are the files and trees clamd reads to run at all, read-only:
// its libraries, the loader's cache, locale and time zone data, OpenSSL's
// configuration, the user database glibc consults for its own name.
var System = []string{
	"/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/share/locale", "/usr/share/zoneinfo",
	"/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
	"/etc/ssl/openssl.cnf", "/dev/null", "/dev/urandom",
}

// New decides the layers and logs, once each, those that cannot be had
// and why. It fails when clamgate runs as root and cannot name a user
// other than root for clamd: a silent root clamd is worse than none.
func New(cfg Config) (*Sandbox, error) {
	if cfg.Helper == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("sandbox: the helper: %w", err)
		}
		cfg.Helper = exe
	}
	s := &Sandbox{cfg: cfg, netns: true}
	if err := s.identity(); err != nil {
		return nil, err
	}
	exe, err := executables(cfg.Program)
	if err != nil {
		return nil, err
	}
	readOnly, writable := []string{cfg.Database}, []string{cfg.StateDir}
	if len(cfg.Writable) > 0 {
		readOnly, writable = append(readOnly, cfg.StateDir), cfg.Writable
	}
	s.spec = Spec{
		Path: cfg.Program, Args: cfg.Args, Env: cfg.Env,
		Drop: s.spec.Drop, UID: s.uid, GID: s.gid, Caps: true,
		ReadOnly: readOnly, Writable: writable, System: System, Exec: exe,
		Rlimits: rlimits(),
	}
	s.spec.Landlock = s.check("landlock", landlockAvailable)
	s.spec.Seccomp = s.check("seccomp", func() error {
		if !seccompSupported() {
			return errors.New("the kernel does not filter system calls (CONFIG_SECCOMP_FILTER)")
		}
		return nil
	})
	if cfg.MemoryMax > 0 {
		s.check("memory cgroup", func() (err error) {
			s.spec.Cgroup, err = newCgroup(cfg.MemoryMax)
			return err
		})
	}
	return s, nil
}

// identity picks clamd's user: the named one when root, else clamgate's
// own, in a user namespace of its own when the host allows one.
func (s *Sandbox) identity() error {
	if os.Geteuid() != 0 {
		s.userns = true
		self, _ := user.Current()
		if s.cfg.User != "" && (self == nil || s.cfg.User != self.Username) {
			return fmt.Errorf("sandbox: clamd cannot run as %q: clamgate runs as uid %d, not root; start clamgate as root or leave the engine's user unset", s.cfg.User, os.Geteuid())
		}
		return nil
	}
	if s.cfg.User == "" {
		return errors.New("sandbox: clamgate runs as root and no user is set for clamd; it never runs clamd as root")
	}
	u, err := user.Lookup(s.cfg.User)
	if err != nil {
		return fmt.Errorf("sandbox: clamd's user %q: %w (create it, e.g. adduser --system %s, or set [engine] user)", s.cfg.User, err, s.cfg.User)
	}
	s.uid, _ = strconv.Atoi(u.Uid)
	s.gid, _ = strconv.Atoi(u.Gid)
	if s.uid == 0 {
		return fmt.Errorf("sandbox: clamd's user %q is root; it never runs clamd as root", s.cfg.User)
	}
	s.spec.Drop = true
	return nil
}

// UID and GID are the host's ids clamd runs as.
func (s *Sandbox) UID() (int, int) {
	if s.spec.Drop {
		return s.uid, s.gid
	}
	return os.Getuid(), os.Getgid()
}

// check logs a layer that cannot be had, once (New runs once per engine).
func (s *Sandbox) check(layer string, available func() error) bool {
	if err := available(); err != nil {
		s.cfg.Log.Warn("engine sandbox: layer missing", "layer", layer, "reason", err.Error())
		return false
	}
	return true
}

func landlockAvailable() error {
	v, err := ll.LandlockGetABIVersion()
	if err != nil || v < 1 {
		return fmt.Errorf("the kernel has no Landlock (ABI %d): %v", v, err)
	}
	return nil
}

// rlimits: no core dumps, which would write the scanned mail and
// downloads to disk; a bounded descriptor table.
func rlimits() []Rlimit {
	var nofile unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	return []Rlimit{
		{Name: "core", Resource: unix.RLIMIT_CORE, Value: 0},
		{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Value: min(nofile.Max, 16384)},
	}
}

// executables are the program and the ELF interpreter the kernel opens
// for it: the only files the confined process may execute.
func executables(program string) ([]string, error) {
	path, err := filepath.EvalSymlinks(program)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %s: %w", path, err)
	}
	defer f.Close()
	out := []string{path}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, fmt.Errorf("sandbox: %s: interpreter: %w", path, err)
			}
			out = append(out, string(b[:len(b)-1]))
		}
	}
	return out, nil
}

// Start starts the confined program through the helper. If the namespaces
// cannot be created it says so, once, and goes on without them.
func (s *Sandbox) Start(stdout, stderr io.Writer) (*exec.Cmd, error) {
	cmd, err := s.command(stdout, stderr)
	if err != nil {
		return nil, err
	}
	err = cmd.Start()
	if err == nil || !s.netns || !namespaceRefused(err) {
		return cmd, err
	}
	s.netns = false
	s.cfg.Log.Warn("engine sandbox: layer missing", "layer", "network namespace", "reason", err.Error())
	if s.userns {
		s.userns, s.spec.Caps = false, false
		s.cfg.Log.Warn("engine sandbox: layer missing", "layer", "capability bounding set",
			"reason", "clamgate is not root and has no user namespace: clamd has no capabilities but keeps the bounding set")
	}
	cmd, err = s.command(stdout, stderr)
	if err != nil {
		return nil, err
	}
	return cmd, cmd.Start()
}

func namespaceRefused(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EUSERS) || errors.Is(err, syscall.EACCES)
}

// Probe checks, as the confined program (its user, groups and Landlock
// rules, in its namespaces), that each access works. The error names
// every path refused and the right missing.
func (s *Sandbox) Probe(access []Access) error {
	var out bytes.Buffer
	probe := *s
	probe.spec.Probe, probe.spec.Seccomp, probe.spec.Cgroup = access, false, ""
	cmd, err := probe.Start(&out, &out)
	if err != nil {
		return fmt.Errorf("checking what clamd can reach: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimPrefix(strings.TrimSpace(out.String()), "clamgate engine-exec: ")
		return fmt.Errorf("clamd's user cannot reach what it needs: %s", msg)
	}
	return nil
}

func (s *Sandbox) command(stdout, stderr io.Writer) (*exec.Cmd, error) {
	enc, err := s.spec.encode()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.cfg.Helper, HelperCommand)
	cmd.Env = []string{specEnv + "=" + enc}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group keeps a terminal's Ctrl-C (or a group-wide
	// SIGTERM) from stopping clamd before the gateway has drained; the
	// gateway stops it last. Pdeathsig covers the gateway being killed.
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if s.netns {
		attr.Cloneflags = syscall.CLONE_NEWNET
	}
	if s.netns && s.userns {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	cmd.SysProcAttr = attr
	return cmd, nil
}

// Close removes the memory cgroup, once clamd has exited.
func (s *Sandbox) Close() error {
	if s.spec.Cgroup == "" {
		return nil
	}
	return removeCgroup(s.spec.Cgroup)
}

// Cgroup is the memory cgroup clamd runs in, "" for none.
func (s *Sandbox) Cgroup() string { return s.spec.Cgroup }
