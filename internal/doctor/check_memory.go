package doctor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func singleClamdCheck() check {
	return check{
		id: "clamd-single", title: "a single clamd on the host", expected: "1 clamd",
		source: "Every clamd loads its own copy of the database (about 1 GiB with the official one): a second one is memory wasted. docs/doctor.md#clamd-single",
		run:    checkSingleClamd,
	}
}

func checkSingleClamd(_ context.Context, h *host) verdict {
	ps := h.named(isClamd)
	switch len(ps) {
	case 0:
		return verdict{status: Warn, measured: "no clamd process", fix: "start the engine: clamgate's managed clamd or the clamd container (clamd.service / clamgate-clamd.service)"}
	case 1:
		return pass(fmt.Sprintf("1 clamd (pid %d), RSS %s", ps[0].PID, mib(ps[0].RSS)))
	}
	var total, largest int64
	var pids []string
	for _, p := range ps {
		total += p.RSS
		largest = max(largest, p.RSS)
		pids = append(pids, strconv.Itoa(p.PID))
	}
	return verdict{status: Fail,
		measured: fmt.Sprintf("%d clamd (pids %s), RSS %s in all: %s wasted on duplicate databases", len(ps), strings.Join(pids, ","), mib(total), mib(total-largest)),
		fix:      "stop and mask the replaced clamd units (systemctl mask --now clamd@amavisd.service ...; see units-masked)",
	}
}

func mib(b int64) string {
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func memoryCapCheck() check {
	return check{
		id: "clamd-memory", title: "clamd's memory is capped by its cgroup, with headroom", expected: "capped, RSS < 2/3 of cap",
		source: "Clamd holds the whole database in memory; without a cap a large database or a reload can push the host into swap or the OOM killer. docs/doctor.md#clamd-memory",
		run: func(_ context.Context, h *host) verdict {
			return perClamd(h, "MemoryMax= (and MemoryHigh=) in the clamd unit or Quadlet [Service], at least 1.5x clamd's resident size", func(p *process) (Status, string) {
				return judgeMemory(p.RSS, cgroupMemoryLimit(h.env, p.PID))
			})
		},
	}
}

// judgeMemory leaves room for a reload or a grown database (clamd's
// resident size peaks about 4 % above its steady size at load, and its
// concurrent reload doubles it).
func judgeMemory(rss, limit int64) (Status, string) {
	if limit <= 0 {
		return Warn, "RSS " + mib(rss) + ", no memory limit"
	}
	m := fmt.Sprintf("RSS %s of a %s limit (%.0f%%)", mib(rss), mib(limit), 100*float64(rss)/float64(limit))
	switch {
	case rss*10 >= limit*9:
		return Fail, m
	case rss*3 > limit*2:
		return Warn, m + ", less than 1.5x headroom"
	}
	return Pass, m
}

// unlimitedV1 is where cgroup v1 reports "no limit" (a page-rounded 2^63).
const unlimitedV1 = 1 << 62

// cgroupMemoryLimit is the tightest memory limit on the process's cgroup
// and its ancestors (a slice's cap applies to all it contains), from the
// v2 memory.max or, on hybrid hosts like this one, v1's
// memory.limit_in_bytes; 0 when there is none.
func cgroupMemoryLimit(env *Env, pid int) int64 {
	v1, v2, ok := cgroupPaths(env.proc(strconv.Itoa(pid), "cgroup"))
	if !ok {
		return 0
	}
	base := filepath.Join(env.Sys, "fs", "cgroup")
	var limit int64
	if v2 != "" {
		root := base
		if !exists(filepath.Join(base, "cgroup.controllers")) {
			root = filepath.Join(base, "unified")
		}
		limit = tightest(limit, ancestorsLimit(root, v2, "memory.max"))
	}
	if v1 != "" {
		mnt := filepath.Join(base, "memory")
		limit = tightest(limit, ancestorsLimit(mnt, beneath(v1, mountRoot(env, mnt)), "memory.limit_in_bytes"))
	}
	return limit
}

// mountRoot is the cgroup a hierarchy's mount shows at its top (mountinfo's
// fourth field): "/" on a host, but the container's own cgroup when doctor
// runs in a container without a cgroup namespace (a rehearsal host under
// podman on cgroup v1), where /proc/PID/cgroup still names full paths.
func mountRoot(env *Env, mountPoint string) string {
	b, _ := os.ReadFile(env.proc("self", "mountinfo"))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == mountPoint {
			return f[3]
		}
	}
	return "/"
}

// beneath makes a full cgroup path relative to the mount's root.
func beneath(cg, root string) string {
	if root == "/" {
		return cg
	}
	if rest, ok := strings.CutPrefix(cg, root); ok && (rest == "" || rest[0] == '/') {
		return "/" + strings.TrimPrefix(rest, "/")
	}
	return cg
}

func cgroupPaths(file string) (v1, v2 string, ok bool) {
	f, err := os.Open(file)
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) != 3 {
			continue
		}
		switch {
		case fields[0] == "0" && fields[1] == "":
			v2 = fields[2]
		case slices.Contains(strings.Split(fields[1], ","), "memory"):
			v1 = fields[2]
		}
	}
	return v1, v2, true
}

func ancestorsLimit(root, cg, file string) int64 {
	var limit int64
	for p := path.Clean("/" + cg); ; p = path.Dir(p) {
		limit = tightest(limit, readLimit(filepath.Join(root, p, file)))
		if p == "/" {
			return limit
		}
	}
}

func readLimit(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n >= unlimitedV1 { // "max" or v1's unlimited
		return 0
	}
	return n
}

// tightest treats 0 as "no limit".
func tightest(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
