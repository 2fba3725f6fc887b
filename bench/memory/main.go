// Command memory measures the gateway's own resident memory while many
// clients stream large objects through it at once: the gateway runs as a
// separate process (the binary given with -gateway) in front of a real
// clamd, and its VmRSS is sampled throughout.
//
//	go build -o /tmp/clamgate ./cmd/clamgate
//	go run ./bench/memory -gateway /tmp/clamgate [-clients 64] [-size 100M]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
)

func main() {
	bin := flag.String("gateway", "", "clamgate binary")
	clients := flag.Int("clients", 64, "concurrent streams")
	sizeFlag := flag.String("size", "100M", "bytes per stream")
	flag.Parse()
	size, err := config.ParseSize(*sizeFlag)
	if err != nil || *bin == "" {
		fail(fmt.Errorf("need -gateway BIN and a valid -size"))
	}
	peak, ok, n, err := Measure(*bin, *clients, size)
	if err != nil {
		fail(err)
	}
	fmt.Printf("%d concurrent streams of %s: %d scanned OK of %d; gateway peak RSS %.1f MiB\n", *clients, *sizeFlag, ok, n, float64(peak)/(1<<20))
}

// Measure runs the load and returns the gateway's peak RSS in bytes, the
// streams scanned clean and the streams sent.
func Measure(bin string, clients int, size int64) (peak int64, ok, n int, err error) {
	dir, _ := os.MkdirTemp("", "cgmem")
	defer os.RemoveAll(dir)
	clamdSock, stopClamd, err := startClamd(dir, size)
	if err != nil {
		return 0, 0, 0, err
	}
	defer stopClamd()
	gwSock := filepath.Join(dir, "gw.sock")
	gw := exec.Command(bin, "serve", "--backend", "unix:"+clamdSock, "--listen", "unix:"+gwSock,
		"--max-stream", strconv.FormatInt(size, 10), "--log-level", "warn")
	gw.Stderr = os.Stderr
	if err := gw.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() { gw.Process.Kill(); gw.Wait() }()
	c, _ := clamd.New("unix:"+gwSock, 30*time.Minute)
	if err := waitPing(c); err != nil {
		return 0, 0, 0, err
	}
	var peakRSS atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go sample(ctx, gw.Process.Pid, &peakRSS)
	payload := make([]byte, size)
	rand.Read(payload)
	var wg sync.WaitGroup
	var okCount atomic.Int64
	for range clients {
		wg.Go(func() {
			if reply, err := c.Instream(context.Background(), bytes.NewReader(payload)); err == nil && reply == "stream: OK" {
				okCount.Add(1)
			} else {
				fmt.Fprintf(os.Stderr, "stream: %q %v\n", reply, err)
			}
		})
	}
	wg.Wait()
	return peakRSS.Load(), int(okCount.Load()), clients, nil
}

func sample(ctx context.Context, pid int, peak *atomic.Int64) {
	for ctx.Err() == nil {
		if v := rss(pid); v > peak.Load() {
			peak.Store(v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func startClamd(dir string, size int64) (string, func(), error) {
	db := filepath.Join(dir, "db")
	os.MkdirAll(db, 0o755)
	os.WriteFile(filepath.Join(db, "eicar.ndb"), []byte("Eicar-Test-Signature:0:*:58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a\n"), 0o644)
	sock := filepath.Join(dir, "clamd.sock")
	conf := strings.Join([]string{"Foreground yes", "LocalSocket " + sock, "DatabaseDirectory " + db,
		"LogFile " + filepath.Join(dir, "clamd.log"), "MaxThreads 10", "MaxQueue 200",
		"StreamMaxLength " + strconv.FormatInt(size+1<<20, 10), "TemporaryDirectory " + dir}, "\n") + "\n"
	os.WriteFile(filepath.Join(dir, "clamd.conf"), []byte(conf), 0o644)
	cmd := exec.Command("clamd", "-c", filepath.Join(dir, "clamd.conf"))
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	c, _ := clamd.New("unix:"+sock, 5*time.Second)
	if err := waitPing(c); err != nil {
		cmd.Process.Kill()
		return "", nil, err
	}
	return sock, func() { cmd.Process.Kill(); cmd.Wait() }, nil
}

func waitPing(c *clamd.Client) error {
	for i := 0; i < 600; i++ {
		if r, err := c.Command(context.Background(), "PING"); err == nil && r == "PONG" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s does not answer PING", c)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "memory:", err)
	os.Exit(1)
}
