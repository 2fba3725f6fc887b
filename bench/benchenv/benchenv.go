// Package benchenv is what the benchmark programs share: the one way a
// benchmark starts a real clamd and the gateway under test (also used by
// the run.sh scripts, through bench/up), the peak resident memory of a
// process, and the side-by-side figures (figures.go).
package benchenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	addrs "clamgate/internal/addr"
	"clamgate/internal/clamd"
	"clamgate/internal/rss"
)

// EICAR is the EICAR test string, as internal/testenv.EICAR.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// marker is a second test signature, as internal/testenv's.
const marker = "CLAMGATE-SECOND-MARK"

// Process is a program a benchmark started.
type Process struct {
	cmd *exec.Cmd
}

// PID is the process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop kills the process and waits for it.
func (p *Process) Stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// start runs argv with its output in dir/logName; the process outlives
// the caller unless stopped, which bench/up relies on.
func start(dir, logName string, env []string, argv ...string) (*Process, error) {
	out, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &Process{cmd: cmd}, nil
}

// Clamd is a clamd started by a benchmark.
type Clamd struct {
	*Process
	Socket string
	DB     string
}

// TestDB writes the benchmarks' database into dir: EICAR, a marker
// signature and ClamAV's test file, as internal/testenv writes it.
func TestDB(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ndb := fmt.Sprintf("Eicar-Test-Signature:0:*:%x\nClamgate-Test-Marker:0:*:%x\n", EICAR, marker)
	if err := os.WriteFile(filepath.Join(dir, "test.ndb"), []byte(ndb), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "test.hdb"), []byte("aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File\n"), 0o644)
}

// clamdDefaults are the clamd.conf lines of every benchmark; an extra line
// with the same option replaces one.
var clamdDefaults = []string{"LocalSocketMode 666", "StreamMaxLength 100M", "MaxThreads 10"}

// StartClamd runs clamd ($CLAMD, else clamd from PATH) in dir with
// database db ("" = TestDB in dir/db) and the extra clamd.conf lines, and
// waits until it answers PING.
func StartClamd(dir, db string, extra ...string) (*Clamd, error) {
	if db == "" {
		db = filepath.Join(dir, "db")
		if err := TestDB(db); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	c := &Clamd{Socket: filepath.Join(dir, "clamd.sock"), DB: db}
	conf := []string{"Foreground yes", "LocalSocket " + c.Socket, "DatabaseDirectory " + db,
		"LogFile " + filepath.Join(dir, "clamd.log"), "TemporaryDirectory " + filepath.Join(dir, "tmp")}
	for _, d := range clamdDefaults {
		name, _, _ := strings.Cut(d, " ")
		if !hasOption(extra, name) {
			conf = append(conf, d)
		}
	}
	conf = append(conf, extra...)
	path := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	bin := os.Getenv("CLAMD")
	if bin == "" {
		bin = "clamd"
	}
	p, err := start(dir, "clamd.out", nil, bin, "--config-file="+path)
	if err != nil {
		return nil, err
	}
	c.Process = p
	client, _ := clamd.New("unix:"+c.Socket, 5*time.Second)
	if err := WaitPing(client, 3*time.Minute); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func hasOption(lines []string, name string) bool {
	for _, l := range lines {
		if n, _, _ := strings.Cut(l, " "); strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// StartGateway runs `bin serve args...` (the gateway binary under test)
// with env added, its log in dir/gateway.log, and waits until each ready
// address ("unix:/path" or "tcp:host:port") accepts a connection.
func StartGateway(dir, bin string, env, ready []string, args ...string) (*Process, error) {
	p, err := start(dir, "gateway.log", env, append([]string{bin, "serve"}, args...)...)
	if err != nil {
		return nil, err
	}
	for _, addr := range ready {
		if err := WaitDial(addr, time.Minute); err != nil {
			p.Stop()
			return nil, fmt.Errorf("gateway: %w (log: %s)", err, filepath.Join(dir, "gateway.log"))
		}
	}
	return p, nil
}

// WaitDial waits until addr accepts a connection.
func WaitDial(addr string, limit time.Duration) error {
	a, err := addrs.Parse(addr)
	if err != nil {
		return err
	}
	network, address := a.Network, a.Address
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout(network, address, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s accepts no connection: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitPing waits until c answers PING.
func WaitPing(c *clamd.Client, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if r, err := c.Command(context.Background(), "PING"); err == nil && r == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer PING", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// SamplePeak records pid's highest RSS in peak until ctx ends.
func SamplePeak(ctx context.Context, pid int, peak *atomic.Int64) {
	for ctx.Err() == nil {
		if v, _ := rss.Read(pid); v > peak.Load() {
			peak.Store(v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
