// Command neighbour measures noisy neighbours on a shared clamd: the
// latency of small "mail" scans alone, and while a "proxy" client floods
// the engine with large streams, through the gateway (fair scheduling)
// and straight to clamd, in one run against the same clamd.
//
//	go run ./bench/neighbour [-db DIR] [-flood 16] [-flood-size 20M] [-mail-size 20K] [-duration 15s]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"clamgate/bench/benchenv"
	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/gateway"
)

func main() {
	db := flag.String("db", "", "signature directory (default: clamgate's test database)")
	flood := flag.Int("flood", 16, "proxy clients streaming at once")
	floodSize := flag.String("flood-size", "20M", "size of each proxy stream")
	mailSize := flag.String("mail-size", "20K", "size of each mail scan")
	mailClients := flag.Int("mail", 2, "mail clients")
	duration := flag.Duration("duration", 30*time.Second, "per scenario")
	proxyConcurrent := flag.Int("proxy-concurrent", 1, "the proxy policy's max_concurrent through the gateway (0 = no limit)")
	flag.Parse()
	fsz, _ := config.ParseSize(*floodSize)
	msz, _ := config.ParseSize(*mailSize)
	dir, _ := os.MkdirTemp("", "neighbour")
	defer os.RemoveAll(dir)
	cl, err := benchenv.StartClamd(dir, *db, "MaxThreads 10", "StreamMaxLength 100M", "MaxQueue 200")
	if err != nil {
		fail(err)
	}
	defer cl.Stop()
	clamdSock := cl.Socket
	mailGW, proxyGW := startGateway(dir, clamdSock, *proxyConcurrent)
	direct := "unix:" + clamdSock
	run := func(name, mail, proxy string) {
		r := scenario(mail, proxy, *mailClients, *flood, msz, fsz, *duration)
		fmt.Printf("%-28s %s\n", name, r)
	}
	fmt.Printf("mail %s scans (%d clients); flood: %d x %s streams; %s per scenario\n", *mailSize, *mailClients, *flood, *floodSize, *duration)
	if os.Getenv("FLOOD_ONLY") != "" {
		run("gateway, flood only", "", proxyGW)
		run("direct, flood only", "", direct)
		return
	}
	run("gateway, mail alone", mailGW, "")
	run("gateway, mail under flood", mailGW, proxyGW)
	run("direct, mail alone", direct, "")
	run("direct, mail under flood", direct, direct)
}

type result struct {
	lat        []time.Duration
	unfinished int
	failed     int
	floodMiB   float64
}

func (r result) String() string {
	if len(r.lat) == 0 {
		return fmt.Sprintf("no mail scan finished (%d still waiting); flood %.0f MiB/s", r.unfinished, r.floodMiB)
	}
	slices.Sort(r.lat)
	q := func(p float64) time.Duration {
		return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("mail n=%-5d p50 %-10v p99 %-10v max %-10v failed %d unfinished %d; flood %.0f MiB/s",
		len(r.lat), q(0.50), q(0.99), r.lat[len(r.lat)-1].Round(time.Millisecond), r.failed, r.unfinished, r.floodMiB)
}

func scenario(mailAddr, proxyAddr string, mails, floods int, msz, fsz int64, d time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	end, _ := ctx.Deadline()
	var mu sync.Mutex
	var r result
	var wg sync.WaitGroup
	var floodBytes int64
	if proxyAddr != "" {
		payload := randomBytes(fsz)
		for range floods {
			wg.Go(func() {
				c, _ := clamd.New(proxyAddr, 10*time.Minute)
				for ctx.Err() == nil {
					reply, err := c.Instream(ctx, bytes.NewReader(payload))
					if err != nil && ctx.Err() == nil && time.Now().Before(end) {
						fmt.Fprintf(os.Stderr, "flood scan failed: %q %v\n", reply, err)
					}
					if err == nil {
						mu.Lock()
						floodBytes += fsz
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(2 * time.Second) // the flood is on
	}
	start := time.Now()
	payload := randomBytes(msz)
	for range mails {
		if mailAddr == "" {
			break
		}
		wg.Go(func() {
			c, _ := clamd.New(mailAddr, 10*time.Minute)
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				reply, err := c.Instream(ctx, bytes.NewReader(payload))
				mu.Lock()
				switch {
				case ctx.Err() != nil, time.Now().After(end):
					// The deadline's i/o timeout can come back a moment
					// before ctx reports it: not a failure.
					r.unfinished++
				case err != nil || reply != "stream: OK":
					if r.failed == 0 {
						fmt.Fprintf(os.Stderr, "mail scan failed: %q %v\n", reply, err)
					}
					r.failed++
				default:
					r.lat = append(r.lat, time.Since(t0))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.floodMiB = float64(floodBytes) / (1 << 20) / time.Since(start).Seconds()
	return r
}

func startGateway(dir, clamdSock string, proxyConcurrent int) (mail, proxy string) {
	mail, proxy = "unix:"+filepath.Join(dir, "mail.sock"), "unix:"+filepath.Join(dir, "proxy.sock")
	cfg, err := config.Parse("bench.toml", []byte(fmt.Sprintf(`
[backend]
address = "unix:%s"
stream_max_length = "100M"
timeout = "10m"
max_jobs = 10
[server]
audit = false
[[listener]]
address = "%s"
policy = "mail"
[[listener]]
address = "%s"
policy = "proxy"
[policy.mail]
max_wait = "10m"
[policy.proxy]
max_wait = "10m"
max_concurrent = %d
max_queue = 1000
`, clamdSock, mail, proxy, proxyConcurrent)))
	if err != nil {
		fail(err)
	}
	go gateway.Run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, a := range []string{mail, proxy} {
		c, _ := clamd.New(a, 5*time.Second)
		if err := benchenv.WaitPing(c, time.Minute); err != nil {
			fail(err)
		}
	}
	return mail, proxy
}

func randomBytes(n int64) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "neighbour:", err)
	os.Exit(1)
}
