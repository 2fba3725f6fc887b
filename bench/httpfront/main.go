// Command httpfront measures the gateway's HTTP front against its clamd
// protocol front on the same engine, side by side in one run: scans per
// second and p50/p99 latency per object size, rounds alternating between
// the two fronts so that machine noise falls on both alike. Every body is
// unique (clamd caches clean verdicts by hash).
//
// With -rss-uploads N -rss-size S it instead sends N concurrent uploads of
// S bytes each to the HTTP front and samples the gateway's RSS (-pid)
// meanwhile.
//
//	go run ./bench/httpfront -clamd tcp:127.0.0.1:3310 -http 127.0.0.1:8080
//	go run ./bench/httpfront -http 127.0.0.1:8080 -pid PID -rss-uploads 64 -rss-size 100M
//
// It is a measuring program, not a pass/fail test.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	clamdAddr := flag.String("clamd", "", "the gateway's clamd-protocol listener: tcp:HOST:PORT or unix:PATH")
	httpAddr := flag.String("http", "", "the gateway's HTTP listener: HOST:PORT")
	sizesFlag := flag.String("sizes", "4096,1048576", "object sizes, bytes")
	conc := flag.Int("c", 4, "concurrent clients per side")
	round := flag.Duration("round", 5*time.Second, "length of one round")
	rounds := flag.Int("rounds", 4, "rounds per side and size")
	pid := flag.Int("pid", 0, "gateway pid, for -rss-uploads")
	rssUploads := flag.Int("rss-uploads", 0, "concurrent uploads for the RSS measurement (0 = throughput mode)")
	rssSize := flag.Int64("rss-size", 100<<20, "bytes per upload in the RSS measurement")
	cpuPids := flag.String("cpu-pids", "", "comma-separated pids (gateway, clamd): also print scans per CPU-second they spent, per front (docs/scaling.md)")
	flag.Parse()
	if *rssUploads > 0 {
		rssRun(*httpAddr, *pid, *rssUploads, *rssSize)
		return
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}
	sides := []side{
		{"clamd", func(b []byte) error { return instream(*clamdAddr, b) }},
		{"http", func(b []byte) error { return httpScan(client, *httpAddr, b) }},
	}
	fmt.Printf("%-8s %-6s %10s %10s %10s %8s\n", "size", "front", "scans/s", "p50 ms", "p99 ms", "errors")
	for _, size := range sizes {
		res := map[string]*result{}
		for _, s := range sides { // warm-up
			run(s, size, *conc, *round/2)
			res[s.name] = &result{}
		}
		for r := range *rounds {
			order := sides
			if r%2 == 1 {
				order = []side{sides[1], sides[0]}
			}
			for _, s := range order {
				before := cpuSeconds(*cpuPids)
				r := run(s, size, *conc, *round)
				r.cpu = cpuSeconds(*cpuPids) - before
				res[s.name].add(r)
			}
		}
		for _, s := range sides {
			x := res[s.name]
			fmt.Printf("%-8d %-6s %10.1f %10.2f %10.2f %8d\n", size, s.name, float64(len(x.lat))/x.elapsed.Seconds(), pct(x.lat, 50), pct(x.lat, 99), x.errors)
		}
		if *cpuPids != "" {
			for _, s := range sides {
				x := res[s.name]
				fmt.Printf("CPU size=%d front=%s scans=%d cpu_seconds=%.2f scans_per_cpu_second=%.2f\n", size, s.name, len(x.lat), x.cpu, float64(len(x.lat))/x.cpu)
			}
		}
		c, h := res["clamd"], res["http"]
		fmt.Printf("RESULT size=%d http/clamd throughput=%.2f p99=%.2f\n", size,
			(float64(len(h.lat))/h.elapsed.Seconds())/(float64(len(c.lat))/c.elapsed.Seconds()), pct(h.lat, 99)/pct(c.lat, 99))
	}
}

type side struct {
	name string
	scan func([]byte) error
}

type result struct {
	lat     []time.Duration
	elapsed time.Duration
	errors  int64
	cpu     float64 // seconds the -cpu-pids processes spent
}

func (r *result) add(o result) {
	r.lat = append(r.lat, o.lat...)
	r.elapsed += o.elapsed
	r.errors += o.errors
	r.cpu += o.cpu
}

// cpuSeconds is the user and system time the processes have spent so far
// (/proc/PID/stat, in clock ticks of 1/100 s on Linux).
func cpuSeconds(pids string) float64 {
	var ticks int64
	for _, pid := range strings.Split(pids, ",") {
		if pid == "" {
			continue
		}
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		_, after, _ := strings.Cut(string(b), ") ") // the command may hold spaces
		f := strings.Fields(after)
		for _, i := range []int{11, 12} { // utime, stime: fields 14 and 15
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return float64(ticks) / 100
}

// run scans unique bodies of size with conc clients for d.
func run(s side, size, conc int, d time.Duration) result {
	var mu sync.Mutex
	var out result
	var errs atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			body := make([]byte, size)
			for time.Since(start) < d {
				fill(body)
				t := time.Now()
				if err := s.scan(body); err != nil {
					errs.Add(1)
					continue
				}
				mu.Lock()
				out.lat = append(out.lat, time.Since(t))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	out.elapsed, out.errors = time.Since(start), errs.Load()
	return out
}

func fill(b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rand.Uint64())
	}
}

func pct(lat []time.Duration, p int) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)].Microseconds()) / 1000
}

// instream scans b with clamd's protocol: one connection per scan.
func instream(addr string, b []byte) error {
	network, address, _ := strings.Cut(addr, ":")
	c, err := net.Dial(network, address)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var hdr [4]byte
	var buf bytes.Buffer
	buf.WriteString("zINSTREAM\x00")
	for off := 0; off < len(b); off += 64 << 10 {
		chunk := b[off:min(len(b), off+64<<10)]
		binary.BigEndian.PutUint32(hdr[:], uint32(len(chunk)))
		buf.Write(hdr[:])
		buf.Write(chunk)
	}
	buf.Write([]byte{0, 0, 0, 0})
	if _, err := c.Write(buf.Bytes()); err != nil {
		return err
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(bytes.TrimRight(reply, "\x00")) != "stream: OK" {
		return fmt.Errorf("reply %q", reply)
	}
	return nil
}

// httpScan posts b to /v1/scan on a kept-alive connection.
func httpScan(c *http.Client, addr string, b []byte) error {
	resp, err := c.Post("http://"+addr+"/v1/scan", "application/octet-stream", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"verdict":"clean"`)) {
		return fmt.Errorf("%d %s", resp.StatusCode, body)
	}
	return nil
}

// rssRun sends n concurrent uploads of size bytes (random, generated as
// they are sent) and prints the gateway's peak RSS meanwhile.
func rssRun(addr string, pid, n int, size int64) {
	before := rss(pid)
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if r := rss(pid); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	codes := map[int]int{}
	var mu sync.Mutex
	start := time.Now()
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+addr+"/v1/scan", io.LimitReader(randReader{}, size))
			req.ContentLength = size
			resp, err := http.DefaultClient.Do(req)
			code := -1
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	close(stop)
	fmt.Printf("RESULT uploads=%d size=%d rss_before_kib=%d rss_peak_kib=%d duration=%s statuses=%v\n",
		n, size, before, peak.Load(), time.Since(start).Round(time.Millisecond), codes)
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	fill(p[:len(p)&^7])
	return len(p), nil
}

// rss is the process's VmRSS in KiB.
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
