// Package benchenv is what the benchmark programs share: a real clamd
// started for the run, and the peak resident memory of a process.
package benchenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/rss"
)

// EicarNDB is the EICAR signature, for a database built by a benchmark.
const EicarNDB = "Eicar-Test-Signature:0:*:58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a\n"

// Clamd is a clamd started by a benchmark.
type Clamd struct {
	Socket string
	cmd    *exec.Cmd
}

// StartClamd runs clamd in dir with database db ("" = a fresh one holding
// EICAR only) and the extra clamd.conf lines, and waits until it answers.
func StartClamd(dir, db string, extra ...string) (*Clamd, error) {
	if db == "" {
		db = filepath.Join(dir, "db")
		if err := os.MkdirAll(db, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(db, "eicar.ndb"), []byte(EicarNDB), 0o644); err != nil {
			return nil, err
		}
	}
	c := &Clamd{Socket: filepath.Join(dir, "clamd.sock")}
	conf := append([]string{"Foreground yes", "LocalSocket " + c.Socket, "DatabaseDirectory " + db,
		"LogFile " + filepath.Join(dir, "clamd.log"), "TemporaryDirectory " + dir}, extra...)
	path := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	c.cmd = exec.Command("clamd", "-c", path)
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	client, _ := clamd.New("unix:"+c.Socket, 5*time.Second)
	if err := WaitPing(client, 2*time.Minute); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// PID is clamd's process id.
func (c *Clamd) PID() int { return c.cmd.Process.Pid }

// Stop kills clamd and waits for it.
func (c *Clamd) Stop() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
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
