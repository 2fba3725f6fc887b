// Command reload measures what a database reload costs, through the
// gateway, for clamd's default (concurrent) reload and for clamgate's
// frugal one, side by side in one run: clamd's steady and peak RSS, scans
// that failed, the slowest scan, and how long until a new signature is
// served. Clients scan small clean streams throughout.
//
//	go run ./bench/reload -db DIR [-workers 4] [-modes concurrent,frugal]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/bench/benchenv"
	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/gateway"
	"clamgate/internal/rss"
)

func main() {
	db := flag.String("db", "", "database directory (copied: the benchmark adds a signature to it)")
	workers := flag.Int("workers", 4, "clients scanning throughout")
	modes := flag.String("modes", "concurrent,frugal", "reload modes to measure, in order")
	flag.Parse()
	if *db == "" {
		fmt.Fprintln(os.Stderr, "reload: -db is required")
		os.Exit(2)
	}
	fmt.Printf("%-11s %10s %10s %6s %8s %8s %10s %12s\n", "mode", "steady MiB", "peak MiB", "peak/x", "scans", "failed", "slowest", "sig served")
	for _, mode := range strings.Split(*modes, ",") {
		r, err := run(mode, *db, *workers)
		if err != nil {
			fmt.Fprintf(os.Stderr, "reload: %s: %v\n", mode, err)
			os.Exit(1)
		}
		fmt.Printf("%-11s %10d %10d %6.2f %8d %8d %10s %12s\n", mode, r.steady, r.peak, float64(r.peak)/float64(r.steady),
			r.scans, r.failed, r.slowest.Round(time.Millisecond), r.served.Round(time.Millisecond))
	}
}

type result struct {
	steady, peak  int // MiB
	scans, failed int64
	slowest       time.Duration
	served        time.Duration
}

func run(mode, srcDB string, workers int) (*result, error) {
	dir, err := os.MkdirTemp("", "reload")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dbDir := filepath.Join(dir, "db")
	if err := exec.Command("cp", "-r", srcDB, dbDir).Run(); err != nil {
		return nil, fmt.Errorf("copying the database: %w", err)
	}
	conf := []string{"MaxThreads 10", "SelfCheck 0"}
	if mode == "frugal" {
		conf = append(conf, "ConcurrentDatabaseReload no", "IdleTimeout 2")
	}
	cl, err := benchenv.StartClamd(dir, dbDir, conf...)
	if err != nil {
		return nil, err
	}
	defer cl.Stop()
	gwSock := filepath.Join(dir, "gw.sock")
	cfg, err := config.Parse("bench.toml", []byte(fmt.Sprintf(`
[backend]
address = "unix:%s/clamd.sock"
[database]
dir = "%s"
reload = "%s"
settle = "500ms"
[[listener]]
address = "unix:%s"
policy = "bench"
[policy.bench]
max_wait = "5m"
`, dir, dbDir, mode, gwSock)))
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go gateway.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	gw, _ := clamd.New("unix:"+gwSock, 10*time.Minute)
	if err := waitScan(gw, "warm-up", "OK", 5*time.Minute); err != nil {
		return nil, err
	}
	return measure(cl.PID(), gw, dbDir, workers)
}

func measure(pid int, gw *clamd.Client, dbDir string, workers int) (*result, error) {
	r := &result{}
	var peak atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	defer stopSampling()
	go benchenv.SamplePeak(sampleCtx, pid, &peak)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	var scans, failed, slowest atomic.Int64
	for range workers {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				start := time.Now()
				reply, err := gw.Instream(context.Background(), strings.NewReader("clean bytes for the reload benchmark"))
				d := int64(time.Since(start))
				for s := slowest.Load(); d > s && !slowest.CompareAndSwap(s, d); s = slowest.Load() {
				}
				scans.Add(1)
				if err != nil || reply != "stream: OK" {
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(3 * time.Second)
	steady, _ := rss.Read(pid)
	r.steady = int(steady >> 20)
	peak.Store(steady)
	marker := fmt.Sprintf("CLAMGATE-RELOAD-BENCH-%d", time.Now().UnixNano())
	updated := time.Now()
	if err := os.WriteFile(filepath.Join(dbDir, "bench-new.ndb"), []byte(fmt.Sprintf("Clamgate.ReloadBench:0:*:%x\n", marker)), 0o644); err != nil {
		stopLoad()
		wg.Wait()
		return nil, err
	}
	err := waitScan(gw, marker, "Clamgate.ReloadBench.UNOFFICIAL FOUND", 10*time.Minute)
	r.served = time.Since(updated)
	time.Sleep(2 * time.Second)
	stopLoad()
	wg.Wait()
	stopSampling()
	r.peak, r.scans, r.failed, r.slowest = int(peak.Load()>>20), scans.Load(), failed.Load(), time.Duration(slowest.Load())
	return r, err
}

func waitScan(gw *clamd.Client, data, want string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		reply, err := gw.Instream(context.Background(), strings.NewReader(data))
		if err == nil && strings.Contains(reply, want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q after %v: %q %v", want, limit, reply, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
