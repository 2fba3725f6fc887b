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
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/bench/benchenv"
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
	cl, err := benchenv.StartClamd(dir, "", "MaxThreads 10", "MaxQueue 200", "StreamMaxLength "+strconv.FormatInt(size+1<<20, 10))
	if err != nil {
		return 0, 0, 0, err
	}
	defer cl.Stop()
	clamdSock := cl.Socket
	gwSock := filepath.Join(dir, "gw.sock")
	gw, err := benchenv.StartGateway(dir, bin, nil, []string{"unix:" + gwSock}, "--backend", "unix:"+clamdSock,
		"--listen", "unix:"+gwSock, "--max-stream", strconv.FormatInt(size, 10), "--log-level", "warn")
	if err != nil {
		return 0, 0, 0, err
	}
	defer gw.Stop()
	c, _ := clamd.New("unix:"+gwSock, 30*time.Minute)
	var peakRSS atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go benchenv.SamplePeak(ctx, gw.PID(), &peakRSS)
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

func fail(err error) {
	fmt.Fprintln(os.Stderr, "memory:", err)
	os.Exit(1)
}
