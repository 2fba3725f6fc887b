package engine

import (
	"bufio"
	"context"
	"crypto/md5"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/testuser"
)

// The test binary is also, for the unprivileged test, an engine run as
// another user (and, through package sandbox's init, the helper).
func TestMain(m *testing.M) {
	if dir := os.Getenv(unprivilegedEnv); dir != "" {
		os.Exit(runEngineFor(dir))
	}
	os.Exit(withTestUser(m.Run))
}

// sandboxed is a managed clamd under test, with the built-in database in
// a directory of its own (read-only to clamd) and a state directory.
type sandboxed struct {
	e      *Engine
	dir    string
	db     string
	client *clamd.Client
	ctx    context.Context
}

func startSandboxed(t *testing.T) *sandboxed {
	t.Helper()
	return startSandboxedMode(t, "frugal")
}

// startSandboxedMode starts the managed clamd with reload set to mode.
func startSandboxedMode(t *testing.T, mode string) *sandboxed {
	t.Helper()
	dir := shortTempDir(t)
	db := filepath.Join(dir, "db")
	if err := writeTestDBTo(db); err != nil {
		t.Fatal(err)
	}
	// The log of a clamd that ran as root, in an earlier layout: it
	// must not keep the new clamd from starting.
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state", "clamd.log"), []byte("from a root clamd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := New(config.Engine{Clamd: "/usr/sbin/clamd", StateDir: filepath.Join(dir, "state"), Database: db,
		MaxThreads: 2, StreamMaxLength: 1 << 20, Reload: mode, User: rootTestUser()}, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err := e.Prepare(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wait, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	if err := e.WaitReady(wait); err != nil {
		t.Fatalf("sandboxed clamd not ready: %v", err)
	}
	return &sandboxed{e: e, dir: dir, db: db, ctx: ctx,
		client: &clamd.Client{Network: "unix", Address: e.Socket(), Timeout: 30 * time.Second}}
}

// TestSandboxScans: EICAR through INSTREAM and ClamAV's test file through
// FILDES reach the confined clamd and are found.
func TestSandboxScans(t *testing.T) {
	s := startSandboxed(t)
	if got, err := s.client.Instream(s.ctx, strings.NewReader(eicar)); err != nil || got != "stream: Eicar-Test-Signature.UNOFFICIAL FOUND" {
		t.Fatalf("INSTREAM EICAR: %q %v", got, err)
	}
	f, err := os.Open("/usr/share/clamav-testfiles/clam.zip")
	if err != nil {
		t.Fatalf("clamav-testfiles: %v", err)
	}
	defer f.Close()
	if got, err := s.client.Fildes(s.ctx, f); err != nil || !strings.HasSuffix(got, ": ClamAV-Test-File.UNOFFICIAL FOUND") {
		t.Fatalf("FILDES clam.zip: %q %v", got, err)
	}
}

// TestSandboxReload adds a signature to the read-only database and makes
// clamd load it with RELOAD: the new signature is then found, and the
// same clamd (not one restarted after a seccomp kill) still answers.
func TestSandboxReload(t *testing.T) {
	s := startSandboxed(t)
	pid := s.e.PID()
	body := "clamgate sandbox reload probe " + strconv.Itoa(os.Getpid())
	hdb := fmt.Sprintf("%x:%d:Clamgate-Reload-Probe\n", md5.Sum([]byte(body)), len(body))
	if err := os.WriteFile(filepath.Join(s.db, "reload.hdb"), []byte(hdb), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.client.Command(s.ctx, "RELOAD"); err != nil || got != "RELOADING" {
		t.Fatalf("RELOAD: %q %v", got, err)
	}
	var got string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, _ = s.client.Instream(s.ctx, strings.NewReader(body)); strings.HasSuffix(got, "FOUND") {
			break
		}
	}
	if got != "stream: Clamgate-Reload-Probe.UNOFFICIAL FOUND" {
		t.Fatalf("after RELOAD: %q", got)
	}
	if s.e.PID() != pid {
		t.Fatalf("clamd was restarted during the reload (pid %d, now %d): see the log for SIGSYS", pid, s.e.PID())
	}
}

// TestSandboxHolds reads the confinement from /proc of the running clamd
// and tries it: a file outside the database that clamd's user could read,
// and a loopback listener, are both out of its reach.
func TestSandboxHolds(t *testing.T) {
	s := startSandboxed(t)
	pid := s.e.PID()
	st := procStatus(t, pid)
	clamav, err := user.Lookup(testUser)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Uid": strings.Repeat(clamav.Uid+"\t", 3) + clamav.Uid, "Gid": strings.Repeat(clamav.Gid+"\t", 3) + clamav.Gid,
		"Groups": "", "CapInh": zeroCaps, "CapPrm": zeroCaps, "CapEff": zeroCaps, "CapBnd": zeroCaps, "CapAmb": zeroCaps,
		"NoNewPrivs": "1", "Seccomp": "2",
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("/proc/%d/status %s: %q, want %q", pid, k, st[k], v)
		}
	}
	if own, theirs := netNS(t, "self"), netNS(t, strconv.Itoa(pid)); own == theirs {
		t.Errorf("clamd shares the gateway's network namespace %s", own)
	}

	t.Run("files", func(t *testing.T) { plantedOutOfReach(t, s) })
	t.Run("network", func(t *testing.T) { loopbackOutOfReach(t, pid) })
	t.Run("memory", func(t *testing.T) {
		cg := s.e.Cgroup()
		if cg == "" {
			t.Skip("no memory cgroup on this host (the engine logged why)")
		}
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if !strings.Contains(string(raw), filepath.Base(cg)) {
			t.Errorf("clamd is not in %s:\n%s", cg, raw)
		}
		limit := readFirst(filepath.Join(cg, "memory.max"), filepath.Join(cg, "memory.limit_in_bytes"))
		if limit != strconv.FormatInt(s.e.memoryMax(), 10) {
			t.Errorf("memory limit %q, want %d", limit, s.e.memoryMax())
		}
	})
}

const zeroCaps = "0000000000000000"

// plantedOutOfReach: clamd's user may read the planted file by its mode,
// so only the sandbox keeps clamd's own SCAN from opening it, while a file
// of the database is scanned.
func plantedOutOfReach(t *testing.T, s *sandboxed) {
	outside := filepath.Join(s.dir, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(outside, "planted.hdb")
	if err := os.WriteFile(planted, []byte(eicar), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := s.client.Command(s.ctx, "SCAN "+planted)
	if err != nil || strings.HasSuffix(got, "FOUND") || !strings.HasSuffix(got, "ERROR") {
		t.Errorf("SCAN of a file outside the database: %q %v, want an access error", got, err)
	}
	t.Logf("SCAN of the planted file: %q", got)
	inside := filepath.Join(s.db, "clamgate-test.hdb")
	if got, err := s.client.Command(s.ctx, "SCAN "+inside); err != nil || got != inside+": OK" {
		t.Errorf("SCAN of a database file (the control): %q %v", got, err)
	}
}

// loopbackOutOfReach dials a listener of the test's from clamd's network
// namespace: the dial runs on a thread moved into it, never returned to
// the runtime.
func loopbackOutOfReach(t *testing.T, pid int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second); err != nil {
		t.Fatalf("the control dial from the test's namespace: %v", err)
	} else {
		c.Close()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err == nil {
			c.Close()
			errc <- fmt.Errorf("connected to %s from clamd's namespace", l.Addr())
			return
		}
		t.Logf("from clamd's namespace: %v", err)
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Error(err)
	}
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		out[k] = strings.TrimSpace(v)
	}
	return out
}

func netNS(t *testing.T, pid string) string {
	t.Helper()
	ns, err := os.Readlink("/proc/" + pid + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func readFirst(paths ...string) string {
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// shortTempDir keeps unix socket paths under 108 bytes and lets clamd's
// user traverse to its state directory.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cgsb")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// unprivilegedEnv names the directory of an engine the test binary runs
// as an unprivileged user (TestSandboxUnprivileged).
const unprivilegedEnv = "CLAMGATE_TEST_ENGINE_DIR"

// runEngineFor runs a managed clamd in dir until killed, logging to
// dir/engine.log.
func runEngineFor(dir string) int {
	logf, err := os.Create(filepath.Join(dir, "engine.log"))
	if err != nil {
		return 1
	}
	log := slog.New(slog.NewTextHandler(logf, nil))
	e := New(config.Engine{Clamd: "/usr/sbin/clamd", StateDir: filepath.Join(dir, "state"), Database: filepath.Join(dir, "db"),
		MaxThreads: 2, StreamMaxLength: 1 << 20, Reload: "frugal"}, log)
	if err := e.Prepare(); err != nil {
		log.Error("prepare", "err", err)
		return 1
	}
	_ = e.Run(context.Background())
	return 0
}

// TestSandboxUnprivileged runs the engine as a normal user: clamd keeps
// that user but still gets no_new_privs, Landlock, seccomp, an empty
// bounding set and a network namespace (through a user namespace), and
// the layer it cannot have, the memory cgroup, is logged by name.
func TestSandboxUnprivileged(t *testing.T) {
	tu := testuser.New(t, "cgsandbox")
	u := ids{tu.UID, tu.GID}
	dir := shortTempDir(t)
	if err := writeTestDBTo(filepath.Join(dir, "db")); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "engine.test")
	copyFile(t, os.Args[0], bin)
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid="+strconv.Itoa(u.uid), "--regid="+strconv.Itoa(u.gid), "--clear-groups", bin)
	cmd.Env = append(os.Environ(), unprivilegedEnv+"="+dir)
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	client := &clamd.Client{Network: "unix", Address: filepath.Join(dir, "state", runSub, "clamd.sock"), Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := clamd.WaitPing(ctx, client); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "engine.log"))
		t.Fatalf("unprivileged engine not ready: %v\n%s", err, log)
	}
	if got, err := client.Instream(ctx, strings.NewReader(eicar)); err != nil || !strings.HasSuffix(got, "FOUND") {
		t.Fatalf("INSTREAM EICAR: %q %v", got, err)
	}
	pid := readPID(t, filepath.Join(dir, "state"))
	st := procStatus(t, pid)
	uid := strconv.Itoa(u.uid)
	for k, v := range map[string]string{"Uid": strings.Repeat(uid+"\t", 3) + uid, "CapEff": zeroCaps, "CapBnd": zeroCaps,
		"NoNewPrivs": "1", "Seccomp": "2"} {
		if st[k] != v {
			t.Errorf("/proc/%d/status %s: %q, want %q", pid, k, st[k], v)
		}
	}
	if netNS(t, "self") == netNS(t, strconv.Itoa(pid)) {
		t.Error("the unprivileged clamd shares the host's network namespace")
	}
	log, _ := os.ReadFile(filepath.Join(dir, "engine.log"))
	if !strings.Contains(string(log), `layer="memory cgroup" reason="clamgate is not root`) {
		t.Errorf("the missing memory cgroup is not logged by name:\n%s", log)
	}
	if n := strings.Count(string(log), "layer missing"); n != 1 {
		t.Errorf("%d layers logged missing, want only the memory cgroup:\n%s", n, log)
	}
}

type ids struct{ uid, gid int }

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
