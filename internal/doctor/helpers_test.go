package doctor_test

import (
	"cmp"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/doctor"
	"clamgate/internal/testenv"
)

const nobody = 65534

// clamdOpts describe one real clamd a test starts.
type clamdOpts struct {
	tcpAddr     string   // TCPAddr; "" = no TCP socket
	socketMode  string   // LocalSocketMode, default 666
	socketGroup string   // LocalSocketGroup
	wrap        []string // commands clamd runs under (setpriv, unshare)
	seccomp     bool     // under the test binary's seccomp wrapper
	owner       int      // uid that must be able to create the socket; 0 = root
}

type clamdProc struct {
	pid    int
	socket string
	port   int
}

// startClamd starts /usr/sbin/clamd with the tiny test database and waits
// for PONG on its unix socket; it is killed when the test ends.
func startClamd(t *testing.T, o clamdOpts) *clamdProc {
	t.Helper()
	bin := "/usr/sbin/clamd"
	if _, err := os.Stat(bin); err != nil {
		testenv.MissingPeer(t, "clamd", "run scripts/install-deps.sh --test (apt-get install clamav-daemon)")
	}
	dir := testenv.TempDir(t)
	testenv.WriteTestDB(t, filepath.Join(dir, "db"))
	if o.owner != 0 {
		must(t, os.Chown(dir, o.owner, -1))
	}
	c := &clamdProc{socket: filepath.Join(dir, "clamd.sock")}
	conf := []string{"Foreground yes", "LocalSocket " + c.socket, "LocalSocketMode " + cmp.Or(o.socketMode, "666"),
		"DatabaseDirectory " + filepath.Join(dir, "db"), "MaxThreads 2"}
	if o.socketGroup != "" {
		conf = append(conf, "LocalSocketGroup "+o.socketGroup)
	}
	if o.tcpAddr != "" {
		c.port = freePort(t)
		conf = append(conf, "TCPSocket "+strconv.Itoa(c.port), "TCPAddr "+o.tcpAddr)
	}
	confPath := filepath.Join(dir, "clamd.conf")
	must(t, os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644))
	argv := append(append([]string{}, o.wrap...), bin, "--config-file="+confPath)
	if o.seccomp {
		argv = append([]string{selfExe}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if o.seccomp {
		cmd.Env = append(os.Environ(), seccompEnv+"=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	c.pid = cmd.Process.Pid
	waitPong(t, c.socket, done, out)
	return c
}

func waitPong(t *testing.T, socket string, done chan struct{}, out *strings.Builder) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("clamd exited:\n%s", out)
		default:
		}
		if conn, err := net.Dial("unix", socket); err == nil {
			conn.Write([]byte("zPING\x00"))
			b := make([]byte, 16)
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _ := conn.Read(b)
			conn.Close()
			if strings.HasPrefix(string(b[:n]), "PONG") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("clamd did not answer PING:\n%s", out)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// liveEnv inspects the real /proc and /sys, restricted to pids.
func liveEnv(pids ...int) *doctor.Env {
	env := doctor.HostEnv("/")
	env.Ports = nil
	env.Only = func(pid int) bool { return slices.Contains(pids, pid) }
	env.Probe = prober()
	env.ConfigPath = doctor.DefaultConfig
	return env
}

// treeEnv checks a tree offline.
func treeEnv(root string) *doctor.Env {
	env := doctor.HostEnv(root)
	env.ConfigPath = filepath.Join(root, doctor.DefaultConfig)
	return env
}

// runOne runs the single check id and returns its row.
func runOne(t *testing.T, env *doctor.Env, id string) doctor.Result {
	t.Helper()
	env.Select = func(c string) bool { return c == id }
	r := doctor.Run(context.Background(), env)
	if len(r.Checks) != 1 {
		t.Fatalf("check %s: %d rows", id, len(r.Checks))
	}
	return r.Checks[0]
}

// expect asserts a row's status and that its measurement mentions each want.
func expect(t *testing.T, r doctor.Result, status doctor.Status, wants ...string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %s, want %s; measured %q", r.ID, r.Status, status, r.Measured)
	}
	for _, w := range wants {
		if !strings.Contains(r.Measured, w) {
			t.Errorf("%s: measured %q does not mention %q", r.ID, r.Measured, w)
		}
	}
	if status != doctor.Pass && r.Fix == "" {
		t.Errorf("%s: no fix for a %s", r.ID, status)
	}
	if r.Source == "" {
		t.Errorf("%s: no source", r.ID)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeFile creates path (and its directories) under root.
func writeFile(t *testing.T, root, path, content string) string {
	t.Helper()
	full := filepath.Join(root, path)
	must(t, os.MkdirAll(filepath.Dir(full), 0o755))
	must(t, os.WriteFile(full, []byte(content), 0o644))
	return full
}

func symlink(t *testing.T, root, path, target string) {
	t.Helper()
	full := filepath.Join(root, path)
	must(t, os.MkdirAll(filepath.Dir(full), 0o755))
	must(t, os.Symlink(target, full))
	must(t, os.Chmod(filepath.Dir(full), 0o755)) // testenv dirs are 0755, MkdirAll respects the umask
}

// deadSocket leaves a socket file nobody listens on: what a crashed
// clamd leaves behind.
func deadSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	must(t, err)
	l.SetUnlinkOnClose(false)
	l.Close()
}
