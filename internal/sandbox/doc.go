// Package sandbox confines the managed clamd without a container runtime:
// its own user, no capabilities, no_new_privs, its own network namespace,
// Landlock rules that leave it the database read-only and its state
// directory writable, a seccomp allow list, rlimits and a memory cgroup.
//
// # Why a re-exec'd helper
//
// Go cannot run arbitrary code between fork and exec: os/exec offers
// credentials, namespaces and a parent-death signal, but not capability
// bounding sets, Landlock, seccomp or rlimits for the child alone, and
// applying them in the gateway itself would confine the gateway. So the
// engine starts clamgate again (the hidden `clamgate engine-exec` command,
// [HelperCommand], caught in this package's init) in the new namespaces; that small helper locks itself to
// one OS thread, applies the layers to that thread in an order where each
// step still has the rights it needs (cgroup and rlimits while privileged,
// the Landlock ruleset opened before dropping the user, the capability
// bounding set emptied before setuid clears CAP_SETPCAP, the seccomp filter
// last), and execve's clamd from that thread, which carries every
// per-thread attribute over. Nothing of the helper remains in the process.
//
// # Why these libraries
//
// Landlock through github.com/landlock-lsm/go-landlock: it knows every ABI
// version and downgrades rules in best-effort mode on older kernels, which
// hand-written rulesets get wrong; only its ruleset is used
// ([landlock.Config.NewRulesetFD]) and enforced on the helper's one thread,
// since the library's all-thread enforcement is not needed before execve.
// Seccomp through github.com/elastic/go-seccomp-bpf: it assembles and
// verifies the BPF program, checks the architecture and refuses the x32
// ABI, all easy to get subtly wrong by hand. Capabilities, rlimits,
// identities and cgroups are a few plain system calls and files through
// golang.org/x/sys/unix; a library would add nothing.
//
// # The seccomp allow list
//
// Derived by tracing clamd 1.4 with strace -f through start-up and
// database load, PING, VERSION, STATS, INSTREAM (EICAR, a 900 KB random
// stream, every file of clamav-testfiles), FILDES (every file of
// clamav-testfiles, archives included), SCAN and CONTSCAN of paths,
// IDSESSION, RELOAD, SIGHUP, SIGUSR2, SIGTERM and SHUTDOWN, both as the
// clamav user and as root of a user namespace; see [Syscalls]. socket is
// allowed for AF_UNIX only; connect and ioctl, which clamd tries but needs
// not, fail with an errno ([Refused]). Anything else kills clamd (SIGSYS),
// which the engine logs, rather than failing a scan in a way that could
// pass for clean.
package sandbox
