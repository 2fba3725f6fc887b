package doctor_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"clamgate/internal/doctor"
)

// The three real clamd processes the process checks are judged on:
//
//	exposed:  root, every capability, TCP on 0.0.0.0 in the host's namespace
//	hardened: nobody, no capability, empty bounding set, NoNewPrivs,
//	          seccomp filter, its own network namespace (only lo)
//	capable:  nobody but with an ambient capability, TCP on 127.0.0.1
func TestClamdProcesses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start clamd as other users")
	}
	exposed := startClamd(t, clamdOpts{tcpAddr: "0.0.0.0"})
	hardened := startClamd(t, clamdOpts{tcpAddr: "0.0.0.0", seccomp: true, owner: nobody, wrap: []string{"unshare", "-n",
		"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"}})
	capable := startClamd(t, clamdOpts{tcpAddr: "127.0.0.1", owner: nobody, wrap: []string{
		"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"}})

	row := func(id string, pids ...int) doctor.Result { return runOne(t, liveEnv(pids...), id) }
	port := func(c *clamdProc) string { return ":" + strconv.Itoa(c.port) }

	t.Run("listeners", func(t *testing.T) {
		expect(t, row("listeners", exposed.pid), doctor.Fail, "0.0.0.0"+port(exposed), "NOT loopback", "unix:"+exposed.socket)
		expect(t, row("listeners", hardened.pid), doctor.Pass, "0.0.0.0"+port(hardened), "own network namespace with only lo")
		expect(t, row("listeners", capable.pid), doctor.Pass, "127.0.0.1"+port(capable))
		expect(t, row("listeners", capable.pid, exposed.pid), doctor.Fail, "127.0.0.1"+port(capable), "0.0.0.0"+port(exposed))
	})
	t.Run("uid", func(t *testing.T) {
		expect(t, row("clamd-nonroot", exposed.pid), doctor.Fail, "(root)")
		expect(t, row("clamd-nonroot", hardened.pid), doctor.Pass, "uid 65534")
		expect(t, row("clamd-nonroot", capable.pid), doctor.Pass)
	})
	t.Run("capeff", func(t *testing.T) {
		expect(t, row("clamd-capeff", exposed.pid), doctor.Fail, "CapEff 000001")
		expect(t, row("clamd-capeff", hardened.pid), doctor.Pass, "CapEff 0")
		expect(t, row("clamd-capeff", capable.pid), doctor.Fail, "CapEff 0000000000000400 (net_bind_service)")
	})
	t.Run("capbnd", func(t *testing.T) {
		expect(t, row("clamd-capbnd", exposed.pid), doctor.Warn, "nothing dropped")
		expect(t, row("clamd-capbnd", hardened.pid), doctor.Pass, "CapBnd 0000000000000000 (none)")
		expect(t, row("clamd-capbnd", capable.pid), doctor.Warn, "nothing dropped")
	})
	t.Run("nonewprivs", func(t *testing.T) {
		expect(t, row("clamd-nonewprivs", exposed.pid), doctor.Warn, "NoNewPrivs 0")
		expect(t, row("clamd-nonewprivs", hardened.pid), doctor.Pass, "NoNewPrivs 1")
	})
	t.Run("seccomp", func(t *testing.T) {
		expect(t, row("clamd-seccomp", exposed.pid), doctor.Warn, "Seccomp 0")
		expect(t, row("clamd-seccomp", hardened.pid), doctor.Pass, "Seccomp 2")
	})
	t.Run("netns", func(t *testing.T) {
		expect(t, row("clamd-netns", exposed.pid), doctor.Warn, "host's net:[")
		expect(t, row("clamd-netns", hardened.pid), doctor.Pass, "own net:[")
	})
	t.Run("single", func(t *testing.T) {
		expect(t, row("clamd-single", hardened.pid), doctor.Pass, "1 clamd")
		r := row("clamd-single", exposed.pid, hardened.pid, capable.pid)
		expect(t, r, doctor.Fail, "3 clamd", "wasted on duplicate databases")
		expect(t, row("clamd-single"), doctor.Warn, "no clamd process")
	})
	t.Run("memory", func(t *testing.T) {
		expect(t, row("clamd-memory", exposed.pid), doctor.Warn, "no memory limit")
		roomy, tight := memoryCgroup(t, "roomy", 1<<30), memoryCgroup(t, "tight", 8<<20)
		roomy.move(t, hardened.pid)
		tight.move(t, capable.pid)
		expect(t, row("clamd-memory", hardened.pid), doctor.Pass, "of a 1024 MiB limit")
		expect(t, row("clamd-memory", capable.pid), doctor.Fail, "of a 8 MiB limit")
	})
}

// cgroup is a memory cgroup the test made, on the v1 memory controller
// this machine has or on a v2 hierarchy.
type cgroup struct {
	dir, parent string
}

// memoryCgroup creates a child of the test's own memory cgroup with a
// limit. Charges do not move with a process on v1, so a limit below a
// moved process's RSS is accepted and the process is not killed.
func memoryCgroup(t *testing.T, name string, limit int64) *cgroup {
	t.Helper()
	parent, file := ownMemoryCgroup(t)
	dir := filepath.Join(parent, fmt.Sprintf("doctor-%s-%d", name, os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a memory cgroup here: %v", err)
	}
	cg := &cgroup{dir: dir, parent: parent}
	t.Cleanup(cg.remove)
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		t.Skipf("cannot set %s: %v", file, err)
	}
	return cg
}

func ownMemoryCgroup(t *testing.T) (dir, limitFile string) {
	f, err := os.Open("/proc/self/cgroup")
	must(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ",memory,") {
			return filepath.Join("/sys/fs/cgroup/memory", parts[2]), "memory.limit_in_bytes"
		}
		if len(parts) == 3 && parts[0] == "0" && fileExists("/sys/fs/cgroup/cgroup.controllers") {
			dir, limitFile = filepath.Join("/sys/fs/cgroup", parts[2]), "memory.max"
		}
	}
	if dir == "" {
		t.Skip("no memory cgroup controller")
	}
	return dir, limitFile
}

func (cg *cgroup) move(t *testing.T, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Skipf("cannot move pid %d into %s: %v", pid, cg.dir, err)
	}
}

// remove moves any process back to the parent first: a cgroup with
// members cannot be removed, and the clamd may still be running.
func (cg *cgroup) remove() {
	b, _ := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
	for _, pid := range strings.Fields(string(b)) {
		_ = os.WriteFile(filepath.Join(cg.parent, "cgroup.procs"), []byte(pid), 0o644)
	}
	_ = os.Remove(cg.dir)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
