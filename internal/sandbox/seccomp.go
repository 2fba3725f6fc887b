package sandbox

import (
	"slices"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// Traced are the system calls clamd 1.4.6 made under strace -f through
// load, every command and RELOAD (see the package doc), socket excepted:
// it is allowed for AF_UNIX only.
var Traced = []string{
	"accept", "access", "arch_prctl", "bind", "brk", "chmod", "clock_gettime", "clone3", "close",
	"execve", "exit", "exit_group", "fcntl", "ftruncate", "futex", "getdents64", "geteuid",
	"getpeername", "getpid", "getrandom", "listen", "lseek", "madvise", "mkdir", "mmap", "mprotect",
	"munmap", "newfstatat", "openat", "pipe2", "poll", "prctl", "pread64", "prlimit64", "read",
	"readlink", "recvmsg", "rmdir", "rseq", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
	"sendto", "set_robust_list", "set_tid_address", "shutdown", "umask", "unlink", "write",
}

// TracedAsRoot are the calls clamd adds when it runs as root of a user
// namespace (clamgate unprivileged): it hands its pid file to its User
// (root by default).
var TracedAsRoot = []string{"lchown"}

// Refused are calls clamd makes but needs not, answered with an error
// instead of a kill: glibc asks nscd for user names over a unix socket
// before reading /etc/passwd (connect would reach any socket the user may
// write to), and clamd asks whether stdout is a terminal.
var Refused = map[string]unix.Errno{"connect": unix.EACCES, "ioctl": unix.ENOTTY}

// Untraced are calls the trace did not hit but whose paths are ordinary
// and harmless: glibc's sleeps, abort() and identity queries, the
// variants glibc picks on other versions or architectures for the calls
// traced (stat, open, poll, clone), vectored and positioned I/O, and what
// the Go runtime may do on the helper's thread between loading the filter
// and execve.
var Untraced = []string{
	"nanosleep", "clock_nanosleep", "sched_yield", "gettid", "tgkill", "getuid", "getgid", "getegid",
	"getppid", "fstat", "stat", "lstat", "statx", "fstatfs", "open", "ppoll", "pselect6", "select",
	"clone", "dup", "dup2", "dup3", "readv", "writev", "pwrite64", "sendmsg", "recvfrom", "mremap",
	"sigaltstack", "restart_syscall", "uname", "sysinfo", "getrusage", "sched_getaffinity",
	"rt_sigtimedwait", "membarrier", "unlinkat", "mkdirat", "fchmod",
}

// Syscalls are the calls the filter allows on this architecture (a name
// the architecture lacks, like open on arm64, is left out).
func Syscalls() []string {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil
	}
	var names []string
	for _, n := range slices.Concat(Traced, TracedAsRoot, Untraced) {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	return names
}

func policy() seccomp.Policy {
	groups := []seccomp.SyscallGroup{{
		Action: seccomp.ActionAllow,
		Names:  Syscalls(),
		NamesWithCondtions: []seccomp.NameWithConditions{{
			Name:       "socket",
			Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: unix.AF_UNIX}},
		}},
	}}
	for name, errno := range Refused {
		groups = append(groups, seccomp.SyscallGroup{Action: seccomp.ActionErrno | seccomp.Action(errno), Names: []string{name}})
	}
	return seccomp.Policy{DefaultAction: seccomp.ActionKillProcess, Syscalls: groups}
}

// loadSeccomp filters this thread only: the others vanish at execve.
func loadSeccomp() error {
	return seccomp.LoadFilter(seccomp.Filter{NoNewPrivs: true, Policy: policy()})
}

// seccompSupported reports whether the kernel filters system calls.
func seccompSupported() bool { return seccomp.Supported() }
