// Package testenv starts the real components tests run against: a real
// clamd with a small signature database built by the test (EICAR and
// ClamAV's test file only), and the gateway in front of it. It is imported
// only from _test.go files.
package testenv

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/addr"
	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/gateway"
)

// EICAR is the standard antivirus test string; never real malware.
const EICAR = clamd.EICAR

// EicarThreat is the name clamd gives EICAR with the test database.
const EicarThreat = "Eicar-Test-Signature.UNOFFICIAL"

// Second signature matching EICAR files that carry an extra marker, so a
// file can match two signatures (ALLMATCHSCAN).
const (
	Marker       = "CLAMGATE-SECOND-MARK"
	MarkerThreat = "Clamgate-Test-Marker.UNOFFICIAL"
)

// TempDir returns a short private directory: unix socket paths must stay
// under 108 bytes, which t.TempDir() does not promise.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cg")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// MissingPeer reports a real component a test needs that is not installed
// here: on a developer's machine the test is skipped, but in CI (CI set,
// as every CI system sets it) it fails, since a skipped test passes
// unseen. install says how to get it.
func MissingPeer(t testing.TB, what, install string) {
	t.Helper()
	msg := what + " is not installed: " + install
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: a test that needs a real peer does not skip there)")
	}
	t.Skip(msg)
}

// Clamd is a real clamd started for a test.
type Clamd struct {
	t       testing.TB
	Dir     string
	Socket  string
	TCPAddr string
	DBDir   string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
}

// ClamdOptions tune the clamd a test starts.
type ClamdOptions struct {
	StreamMaxLength string // default 10M
	MaxThreads      int    // default 10
	// SlowSignatures adds that many random 20-byte body signatures: they
	// match nothing, but make clamd scan random data slowly (about 1 s per
	// 8 MB with 30000 on a loaded 2-core machine), so that a test can keep
	// clamd's threads busy without a huge file.
	SlowSignatures int
	Extra          []string
}

// StartClamd starts a real clamd (unix socket and loopback TCP) and waits
// until it answers PING.
func StartClamd(t testing.TB, opt ClamdOptions) *Clamd {
	t.Helper()
	bin, err := exec.LookPath("clamd")
	if err != nil {
		bin = "/usr/sbin/clamd"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("clamd is not installed: run scripts/install-deps.sh --test (apt-get install clamav-daemon)")
		}
	}
	dir := TempDir(t)
	c := &Clamd{t: t, Dir: dir, Socket: filepath.Join(dir, "clamd.sock"), DBDir: filepath.Join(dir, "db")}
	WriteTestDB(t, c.DBDir)
	if opt.SlowSignatures > 0 {
		writeSlowSignatures(t, c.DBDir, opt.SlowSignatures)
	}
	c.TCPAddr = freePort(t)
	_, port, _ := net.SplitHostPort(c.TCPAddr)
	conf := []string{
		"Foreground yes",
		"LocalSocket " + c.Socket,
		"LocalSocketMode 666",
		"TCPSocket " + port,
		"TCPAddr 127.0.0.1",
		"DatabaseDirectory " + c.DBDir,
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"PidFile " + filepath.Join(dir, "clamd.pid"),
		"StreamMaxLength " + or(opt.StreamMaxLength, "10M"),
		fmt.Sprintf("MaxThreads %d", cmp.Or(opt.MaxThreads, 10)),
	}
	conf = append(conf, opt.Extra...)
	if err := os.WriteFile(filepath.Join(dir, "clamd.conf"), []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.start(bin)
	t.Cleanup(c.Stop)
	return c
}

func (c *Clamd) start(bin string) {
	c.t.Helper()
	cmd := exec.Command(bin, "--config-file="+filepath.Join(c.Dir, "clamd.conf"))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := clamd.WaitPing(ctx, c.Client("unix")); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "clamd.log"))
		c.t.Fatalf("clamd did not answer PING: %v\n%s", err, log)
	}
}

// Client returns a protocol client for clamd's unix or tcp socket.
func (c *Clamd) Client(network string) *clamd.Client {
	if network == "tcp" {
		return &clamd.Client{Network: "tcp", Address: c.TCPAddr, Timeout: 30 * time.Second}
	}
	return &clamd.Client{Network: "unix", Address: c.Socket, Timeout: 30 * time.Second}
}

// PID is the running clamd's process id.
func (c *Clamd) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd.Process.Pid
}

// Kill stops clamd abruptly, as a crash would.
func (c *Clamd) Kill() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts clamd again after Kill.
func (c *Clamd) Restart() {
	c.t.Helper()
	bin, _ := exec.LookPath("clamd")
	if bin == "" {
		bin = "/usr/sbin/clamd"
	}
	c.start(bin)
}

// Stop ends clamd at the end of the test.
func (c *Clamd) Stop() {
	c.Kill()
}

// WriteTestDB writes the test signature database: EICAR (.ndb), a second
// signature for marked EICAR files, and ClamAV's clam.exe test file (.hdb).
func WriteTestDB(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ndb := fmt.Sprintf("Eicar-Test-Signature:0:*:%x\nClamgate-Test-Marker:0:*:%x\n", EICAR, Marker)
	files := map[string]string{
		"test.ndb": ndb,
		"test.hdb": "aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func writeSlowSignatures(t testing.TB, dir string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(0x5eed, 0xc1a3)) // not a seed tests use for data
	var b strings.Builder
	pattern := make([]byte, 20)
	for i := range n {
		for j := range pattern {
			pattern[j] = byte(rng.Uint32())
		}
		fmt.Fprintf(&b, "Clamgate.Slow-%d:0:*:%x\n", i, pattern)
	}
	if err := os.WriteFile(filepath.Join(dir, "slow.ndb"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The port is drawn below Linux's ephemeral range (32768-60999): a port
// the kernel hands out for :0 is also the next one it may give a client's
// outgoing connection, which then takes it before the test binds it again
// (seen as "address already in use" under a loaded parallel run).
func freePort(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

// FreePort returns a loopback address with a port free at the time of call.
func FreePort(t testing.TB) string { return freePort(t) }

// Gateway is the gateway running in-process for a test.
type Gateway struct {
	Cfg  *config.Config
	Log  LogBuffer // what it logged so far
	stop context.CancelFunc
	done chan error
}

// StartGateway runs the gateway with cfg until the test ends, and waits
// until every listener accepts connections.
func StartGateway(t testing.TB, cfg *config.Config, opts ...gateway.Option) *Gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{Cfg: cfg, stop: cancel, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &g.Log), &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { g.done <- gateway.Run(ctx, cfg, log, opts...) }()
	t.Cleanup(g.Stop)
	for _, l := range cfg.Listeners {
		a, err := addr.Parse(l.Address)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial(a.Transport(), a.Address)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-g.done: // refused to start: say why
				g.stop = nil
				cancel()
				t.Fatalf("gateway did not start: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway listener %s not up: %v", l.Address, err)
			}
			select {
			case err := <-g.done:
				// Say why at once rather than after the deadline.
				g.stop()
				g.stop = nil
				t.Fatalf("gateway exited at start: %v", err)
			default:
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return g
}

// Stop shuts the gateway down and waits for it.
func (g *Gateway) Stop() {
	if g.stop == nil {
		return
	}
	g.stop()
	g.stop = nil
	<-g.done
}

// LogBuffer keeps a log that one goroutine writes while another reads it
// or waits for a line (WaitFor).
type LogBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed by the next write, for WaitFor
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.b.Write(p)
}

// WaitFor waits until the log contains text, woken by each write, for at
// most limit: a test waits on what the gateway says it did, not on a sleep.
func (l *LogBuffer) WaitFor(text string, limit time.Duration) error {
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		if bytes.Contains(l.b.Bytes(), []byte(text)) {
			l.mu.Unlock()
			return nil
		}
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		select {
		case <-written:
		case <-timeout.C:
			return fmt.Errorf("the log has no %q after %s", text, limit)
		}
	}
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// EngineUser creates name, a system user for a managed engine under test
// (clamd runs as a user of its own, see engine.CheckUser), and removes it
// when the test ends. As a normal user it returns "" (the gateway's own).
func EngineUser(t testing.TB, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return ""
	}
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "already exists") {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	return name
}
