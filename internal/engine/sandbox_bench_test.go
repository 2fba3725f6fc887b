package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
)

// BenchmarkSandboxCost scans the same unique bodies with INSTREAM and
// FILDES on two clamds loading the same database as the same user, one
// sandboxed by the engine and one started plainly, in interleaved rounds
// so that the noisy machine affects both alike, and reports both rates and
// their ratio. CLAMGATE_BENCH_DB names a bigger database (e.g. one of
// bench/gensigs) instead of the built-in one.
//
//	go test -run '^$' -bench SandboxCost -benchtime 2000x ./internal/engine/
func BenchmarkSandboxCost(b *testing.B) {
	dir := shortTempDir(b)
	db := os.Getenv("CLAMGATE_BENCH_DB")
	if db == "" {
		db = filepath.Join(dir, "db")
		if err := writeTestDBTo(db); err != nil {
			b.Fatal(err)
		}
	}
	cfg := config.Engine{Clamd: "/usr/sbin/clamd", Database: db, MaxThreads: 4, StreamMaxLength: 1 << 20, Reload: "frugal", User: rootTestUser()}
	boxed := startBenchEngine(b, cfg, filepath.Join(dir, "boxed"))
	plain := startPlainClamd(b, cfg, filepath.Join(dir, "plain"))
	ctx := context.Background()
	var spent [2]time.Duration
	clients := [2]*clamd.Client{boxed, plain}
	const round = 50
	body := make([]byte, 32<<10)
	_, _ = rand.Read(body)
	b.ResetTimer()
	for i := 0; i < b.N; i += round {
		for side, c := range clients {
			start := time.Now()
			for j := i; j < min(i+round, b.N); j++ {
				// Unique bodies: clamd caches the verdicts of clean ones.
				binary.BigEndian.PutUint64(body, uint64(j)<<1|uint64(side))
				if err := scanBoth(ctx, c, body); err != nil {
					b.Fatal(err)
				}
			}
			spent[side] += time.Since(start)
		}
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return 2 * float64(b.N) / d.Seconds() }
	b.ReportMetric(rate(spent[0]), "sandboxed-scans/s")
	b.ReportMetric(rate(spent[1]), "plain-scans/s")
	b.ReportMetric(rate(spent[0])/rate(spent[1]), "ratio")
}

// scanBoth sends body once by INSTREAM and once by FILDES (an unlinked file).
func scanBoth(ctx context.Context, c *clamd.Client, body []byte) error {
	if got, err := c.Instream(ctx, bytes.NewReader(body)); err != nil || got != "stream: OK" {
		return fmt.Errorf("INSTREAM: %q %v", got, err)
	}
	fd, err := unlinkedFile(body)
	if err != nil {
		return err
	}
	defer fd.Close()
	if got, err := c.Fildes(ctx, fd); err != nil || got[len(got)-2:] != "OK" {
		return fmt.Errorf("FILDES: %q %v", got, err)
	}
	return nil
}

func unlinkedFile(body []byte) (*os.File, error) {
	f, err := os.CreateTemp("", "cgbench")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	if _, err := f.Write(body); err != nil {
		f.Close()
		return nil, err
	}
	_, err = f.Seek(0, 0)
	return f, err
}

func startBenchEngine(b *testing.B, cfg config.Engine, state string) *clamd.Client {
	cfg.StateDir = state
	e := New(cfg, slog.New(slog.DiscardHandler))
	if err := e.Prepare(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	c := &clamd.Client{Network: "unix", Address: e.Socket(), Timeout: 30 * time.Second}
	wait(b, c)
	return c
}

// startPlainClamd runs clamd with the engine's clamd.conf, as the same
// user, without the sandbox.
func startPlainClamd(b *testing.B, cfg config.Engine, state string) *clamd.Client {
	cfg.StateDir = state
	e := New(cfg, slog.New(slog.DiscardHandler))
	if err := e.Prepare(); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(cfg.Clamd, "--config-file="+e.confPath())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(testUser)
		if err != nil {
			b.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = e.sb.Close() })
	c := &clamd.Client{Network: "unix", Address: e.Socket(), Timeout: 30 * time.Second}
	wait(b, c)
	return c
}

func wait(b *testing.B, c *clamd.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := clamd.WaitPing(ctx, c); err != nil {
		b.Fatalf("clamd not ready: %v", err)
	}
}
