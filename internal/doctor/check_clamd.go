package doctor

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
)

// perClamd judges every clamd process with f.
func perClamd(h *host, fix string, f func(*process) (Status, string)) verdict {
	ps := h.named(isClamd)
	if len(ps) == 0 {
		return pass("no clamd process (nothing to check)")
	}
	return fold(ps, fix, func(p *process) (Status, string) {
		st, m := f(p)
		return st, "pid " + strconv.Itoa(p.PID) + ": " + m
	})
}

func clamdUIDCheck() check {
	return check{
		id: "clamd-nonroot", title: "every clamd runs as a non-root user", expected: "uid not 0",
		source: "clamd parses hostile files; run as root, a parser bug gives the attacker the whole host. docs/doctor.md#clamd-nonroot",
		run: func(_ context.Context, h *host) verdict {
			return perClamd(h, "set `User clamav` in the clamd.conf the container (or unit) uses, and restart clamd", judgeUID)
		},
	}
}

// judgeUID fails on any root id: a saved uid of 0 can be taken back. The
// uid is not named: a container's uid 100 is not the host's user 100.
func judgeUID(p *process) (Status, string) {
	for _, id := range p.UID[:3] {
		if id == 0 {
			return Fail, fmt.Sprintf("uid %d/%d/%d (root)", p.UID[0], p.UID[1], p.UID[2])
		}
	}
	return Pass, "uid " + strconv.Itoa(p.UID[1])
}

func clamdCapEffCheck() check {
	return check{
		id: "clamd-capeff", title: "no clamd holds an effective capability", expected: "CapEff 0",
		source: "An effective capability lets a compromised clamd bypass file permissions or change users. docs/doctor.md#clamd-capeff",
		run: func(_ context.Context, h *host) verdict {
			return perClamd(h, "run clamd non-root with no ambient capabilities: DropCapability=all in the Quadlet (--cap-drop all)", func(p *process) (Status, string) {
				if p.CapEff == 0 {
					return Pass, "CapEff 0"
				}
				return Fail, fmt.Sprintf("CapEff %016x (%s)", p.CapEff, capNames(p.CapEff))
			})
		},
	}
}

func clamdCapBndCheck() check {
	return check{
		id: "clamd-capbnd", title: "clamd's capability bounding set is reduced", expected: "reduced (e.g. 5 caps)",
		source: "Capabilities left in the bounding set can be regained through a setuid or file-capability program. docs/doctor.md#clamd-capbnd",
		run: func(_ context.Context, h *host) verdict {
			full, own := fullCaps(h.env), ownBounding(h.env)
			return perClamd(h, "DropCapability=all, then AddCapability=chown dac_override fowner setgid setuid only (Quadlet), or CapabilityBoundingSet= in its unit", func(p *process) (Status, string) {
				m := fmt.Sprintf("CapBnd %016x (%s)", p.CapBnd, capNames(p.CapBnd))
				if p.CapBnd == full || (own != 0 && p.CapBnd&own == own) {
					return Warn, m + ", nothing dropped"
				}
				return Pass, m
			})
		},
	}
}

// fullCaps is every capability the kernel knows.
func fullCaps(env *Env) uint64 {
	b, err := os.ReadFile(env.proc("sys", "kernel", "cap_last_cap"))
	last, err2 := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || err2 != nil || last >= 63 {
		return ^uint64(0)
	}
	return 1<<(last+1) - 1
}

// ownBounding is doctor's own bounding set: a process that kept all of it
// dropped nothing, even where the host's default is not the full set
// (inside a container, say).
func ownBounding(env *Env) uint64 {
	var p process
	b, err := os.ReadFile(env.proc("self", "status"))
	if err != nil {
		return 0
	}
	parseStatus(&p, b)
	return p.CapBnd
}

var capabilityNames = []string{"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
	"sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
	"sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
	"mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore"}

// capNames spells a small set out and only counts a large one.
func capNames(set uint64) string {
	n := bits.OnesCount64(set)
	if n == 0 {
		return "none"
	}
	if n > 6 {
		return strconv.Itoa(n) + " caps"
	}
	var names []string
	for i := 0; i < 64; i++ {
		if set&(1<<i) == 0 {
			continue
		}
		if i < len(capabilityNames) {
			names = append(names, capabilityNames[i])
		} else {
			names = append(names, "cap_"+strconv.Itoa(i))
		}
	}
	return strings.Join(names, ",")
}

func clamdNoNewPrivsCheck() check {
	return check{
		id: "clamd-nonewprivs", title: "clamd cannot regain privileges (NoNewPrivs)", expected: "NoNewPrivs 1",
		source: "Without no_new_privs a compromised clamd can gain privileges by executing a setuid program. docs/doctor.md#clamd-nonewprivs",
		run: func(_ context.Context, h *host) verdict {
			return perClamd(h, "NoNewPrivileges=true in the Quadlet (or the unit that runs clamd)", func(p *process) (Status, string) {
				if p.NoNewPrivs == 1 {
					return Pass, "NoNewPrivs 1"
				}
				return Warn, "NoNewPrivs 0"
			})
		},
	}
}

func clamdSeccompCheck() check {
	return check{
		id: "clamd-seccomp", title: "clamd runs under a seccomp filter", expected: "Seccomp 2 (filter)",
		source: "A seccomp filter limits the system calls a compromised clamd can use to attack the kernel. docs/doctor.md#clamd-seccomp",
		run: func(_ context.Context, h *host) verdict {
			return perClamd(h, "run clamd in the container (podman applies its seccomp profile) or SystemCallFilter=@system-service in its unit", func(p *process) (Status, string) {
				switch p.Seccomp {
				case 2:
					return Pass, "Seccomp 2 (filter)"
				case 1:
					return Pass, "Seccomp 1 (strict)"
				}
				return Warn, "Seccomp 0 (none)"
			})
		},
	}
}

func clamdNetNSCheck() check {
	return check{
		id: "clamd-netns", title: "clamd has a network namespace of its own", expected: "its own",
		source: "Clamd needs no network: in a namespace of its own a compromised clamd can neither listen nor reach other hosts. docs/doctor.md#clamd-netns",
		run: func(_ context.Context, h *host) verdict {
			hostNS := h.hostNetNS()
			return perClamd(h, "run clamd in the container with Network=none (or PrivateNetwork=yes in its unit)", func(p *process) (Status, string) {
				switch {
				case p.NetNS == "" || hostNS == "":
					return Warn, "network namespace unreadable"
				case p.NetNS == hostNS:
					return Warn, "host's " + p.NetNS
				}
				return Pass, "own " + p.NetNS
			})
		},
	}
}
