package doctor

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"clamgate/internal/rss"
)

// process is what doctor reads of one process in /proc.
type process struct {
	PID        int
	Comm       string
	Args       []string
	Exe        string // target of /proc/PID/exe; "" when unreadable
	UID, GID   [4]int // real, effective, saved, file system
	Groups     []int
	CapEff     uint64
	CapBnd     uint64
	NoNewPrivs int
	Seccomp    int
	RSS        int64  // bytes
	NetNS      string // "net:[4026531840]"
}

// host is one run's view of the machine; processes and unit files are
// read once, however many checks look at them.
type host struct {
	env   *Env
	procs []*process
	read  bool
	tree  *unitTree
}

func newHost(env *Env) *host { return &host{env: env} }

func (h *host) processes() []*process {
	if !h.read {
		h.procs, h.read = readProcesses(h.env), true
	}
	return h.procs
}

func (h *host) units() *unitTree {
	if h.tree == nil {
		h.tree = readUnits(h.env)
	}
	return h.tree
}

// named returns the processes that match, in pid order.
func (h *host) named(match func(*process) bool) []*process {
	var out []*process
	for _, p := range h.processes() {
		if match(p) {
			out = append(out, p)
		}
	}
	return out
}

func readProcesses(env *Env) []*process {
	entries, _ := os.ReadDir(env.Proc)
	var out []*process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || (env.Only != nil && !env.Only(pid)) {
			continue
		}
		if p := readProcess(env, pid); p != nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// readProcess returns nil for a process that exited while being read.
func readProcess(env *Env, pid int) *process {
	dir := env.proc(strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return nil
	}
	p := &process{PID: pid}
	parseStatus(p, status)
	comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
	p.Comm = strings.TrimSpace(string(comm))
	cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	p.Args = strings.FieldsFunc(string(cmdline), func(r rune) bool { return r == 0 })
	p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	p.NetNS, _ = os.Readlink(filepath.Join(dir, "ns", "net"))
	return p
}

func parseStatus(p *process, b []byte) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			p.Comm = val
		case "Uid":
			p.UID = ids4(val)
		case "Gid":
			p.GID = ids4(val)
		case "Groups":
			p.Groups = ints(val)
		case "CapEff":
			p.CapEff, _ = strconv.ParseUint(val, 16, 64)
		case "CapBnd":
			p.CapBnd, _ = strconv.ParseUint(val, 16, 64)
		case "NoNewPrivs":
			p.NoNewPrivs, _ = strconv.Atoi(val)
		case "Seccomp":
			p.Seccomp, _ = strconv.Atoi(val)
		}
	}
	p.RSS, _ = rss.Parse(b)
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Fields(s) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func ids4(s string) [4]int {
	var out [4]int
	copy(out[:], ints(s))
	return out
}

// is matches the program a process runs on its comm, and on exe and
// argv[0] too, since comm can be truncated or renamed.
func (p *process) is(names ...string) bool {
	cands := []string{p.Comm, filepath.Base(p.Exe)}
	if len(p.Args) > 0 {
		cands = append(cands, filepath.Base(p.Args[0]))
	}
	for _, c := range cands {
		for _, n := range names {
			if c == n {
				return true
			}
		}
	}
	return false
}

func isClamd(p *process) bool { return p.is("clamd") }

// isAmavisd also recognizes the names amavisd gives itself ("amavisd
// (master)", "amavisd (ch1-avail)") and the perl interpreter running it.
func isAmavisd(p *process) bool {
	if p.is("amavisd", "amavisd-new") || strings.HasPrefix(p.Comm, "amavisd (") {
		return true
	}
	if len(p.Args) > 0 && strings.HasPrefix(p.Args[0], "amavisd (") {
		return true
	}
	return len(p.Args) > 1 && strings.HasPrefix(filepath.Base(p.Args[0]), "perl") && filepath.Base(p.Args[1]) == "amavisd"
}

// isScanFamily are the processes whose sockets speak clamd, ICAP or milter.
func isScanFamily(p *process) bool {
	return p.is("clamd", "clamgate", "c-icap", "clamav-milter")
}

// socketInodes lists the socket inodes a process holds open.
func (h *host) socketInodes(pid int) []uint64 {
	dir := h.env.proc(strconv.Itoa(pid), "fd")
	entries, _ := os.ReadDir(dir)
	var out []uint64
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]"), 10, 64)
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

// hostNetNS is the namespace the host's services live in: PID 1's when it
// can be read (it cannot inside some containers), else doctor's own.
func (h *host) hostNetNS() string {
	if ns, err := os.Readlink(h.env.proc("1", "ns", "net")); err == nil {
		return ns
	}
	ns, _ := os.Readlink(h.env.proc("self", "ns", "net"))
	return ns
}

// who names a process in measurements.
func (p *process) who() string {
	return p.Comm + "[" + strconv.Itoa(p.PID) + "]"
}
