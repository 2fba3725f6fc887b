// Command neighbour measures noisy neighbours on a shared clamd: the
// latency of small "mail" scans alone, and while a "proxy" client floods
// the engine with large streams, through the gateway (fair scheduling)
// and straight to clamd, in one run against the same clamd.
//
// The flood's clients are separate processes with their own random data.
// The report puts side by side, from one run: mail p50/p99 alone and under
// the flood, the flood's MiB/s alone and beside mail, errors, and whether
// /readyz ever left 200.
//
//	go run ./bench/neighbour [-db DIR] [-flood 16] [-flood-size 20M] [-mail-size 20K] [-mail 2 | -mail-rate 100] [-duration 30s] [-warmup 5s]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"clamgate/bench/benchenv"
	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/gateway"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-flood-worker" {
		floodWorker(os.Args[2:])
		return
	}
	db := flag.String("db", "", "signature directory (default: clamgate's test database)")
	flood := flag.Int("flood", 16, "proxy client processes streaming at once")
	floodSize := flag.String("flood-size", "20M", "size of each proxy stream")
	mailSize := flag.String("mail-size", "20K", "size of each mail scan")
	mailClients := flag.Int("mail", 2, "mail clients, each scanning back to back")
	mailRate := flag.Float64("mail-rate", 0, "mails a second arriving at random (Poisson), each timed from its arrival, instead of -mail clients back to back")
	duration := flag.Duration("duration", 30*time.Second, "per scenario, after the flood's warm-up")
	warmup := flag.Duration("warmup", 5*time.Second, "how long the flood runs before a scenario's clock starts")
	proxyConcurrent := flag.Int("proxy-concurrent", 0, "the proxy policy's max_concurrent through the gateway (0 = no limit)")
	direct := flag.Bool("direct", false, "also measure straight to clamd, without the gateway")
	bulkCap := flag.Int("bulk-cap", 0, "[backend] bulk_cap (0 = the default, cores - 1)")
	rounds := flag.Int("rounds", 1, "rounds of the three scenarios, interleaved, each scenario -duration/rounds long: the machine's drift then falls on all three alike")
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
	mailGW, proxyGW, ready := startGateway(dir, clamdSock, *proxyConcurrent, *bulkCap)
	sc := setup{mails: *mailClients, rate: *mailRate, floods: *flood, msz: msz, fsz: fsz, d: *duration / time.Duration(max(*rounds, 1)), warmup: *warmup, dir: dir, clamdPID: cl.PID(),
		metrics: strings.TrimSuffix(ready, "/readyz") + "/metrics"}
	mailers := fmt.Sprintf("%d clients back to back", *mailClients)
	if *mailRate > 0 {
		mailers = fmt.Sprintf("%g a second arriving at random, timed from arrival", *mailRate)
	}
	fmt.Printf("mail %s scans (%s); flood: %d processes x %s random streams; %s per scenario after %s warm-up\n",
		*mailSize, mailers, *flood, *floodSize, *duration, *warmup)
	watch := &readiness{url: ready}
	stopWatch := watch.start()
	var alone, flooded, floodAlone result
	for range max(*rounds, 1) {
		alone.add(sc.run(mailGW, ""))
		flooded.add(sc.run(mailGW, proxyGW))
		floodAlone.add(sc.run("", proxyGW))
	}
	stopWatch()
	fmt.Printf("%-30s %s\n%30s %s\n%30s %s\n", "gateway, mail alone", alone, "", alone.cpu, "", alone.split)
	fmt.Printf("%-30s %s\n%30s %s\n%30s %s\n", "gateway, mail under flood", flooded, "", flooded.cpu, "", flooded.split)
	fmt.Printf("%-30s %s\n%30s %s\n", "gateway, flood alone", floodAlone, "", floodAlone.cpu)
	fmt.Println()
	fmt.Printf("mail p99 under flood / alone: %.2fx (target <= 2x)\n", ratio(flooded.p(0.99), alone.p(0.99)))
	fmt.Printf("flood beside mail / alone:    %.0f%% (target >= 45%%)\n", 100*flooded.floodMiB/floodAlone.floodMiB)
	fmt.Printf("mail errors:                  %d (target 0)\n", alone.failed+flooded.failed)
	fmt.Printf("readiness:                    %s\n", watch)
	if *direct {
		fmt.Printf("%-30s %s\n", "direct, mail alone", sc.run("unix:"+clamdSock, ""))
		fmt.Printf("%-30s %s\n", "direct, mail under flood", sc.run("unix:"+clamdSock, "unix:"+clamdSock))
	}
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

type result struct {
	lat        []time.Duration
	unfinished int
	failed     int
	floodMiB   float64 // mean over the rounds added
	floodErr   int
	cpu        cpuSplit
	split      mailSplit
	n          int // rounds added
}

// add pools another round's figures into r.
func (r *result) add(o result) {
	r.lat = append(r.lat, o.lat...)
	r.unfinished += o.unfinished
	r.failed += o.failed
	r.floodErr += o.floodErr
	r.floodMiB = (r.floodMiB*float64(r.n) + o.floodMiB) / float64(r.n+1)
	r.cpu = cpuSplit{clamd: r.cpu.clamd + o.cpu.clamd, self: r.cpu.self + o.cpu.self, flood: r.cpu.flood + o.cpu.flood, wall: r.cpu.wall + o.cpu.wall}
	r.split.waitSum += o.split.waitSum
	r.split.scanSum += o.split.scanSum
	r.split.count += o.split.count
	r.n++
}

// mailSplit is where a mail scan's time went inside the gateway, from
// /metrics: waiting for an engine slot (the scheduler) and at clamd.
type mailSplit struct {
	waitSum, scanSum float64
	count            float64
}

func (m mailSplit) String() string {
	if m.count == 0 {
		return "gateway: no mail scans counted"
	}
	return fmt.Sprintf("gateway, per mail scan: waiting for a slot %.2f ms, at clamd %.2f ms (means)",
		1000*m.waitSum/m.count, 1000*m.scanSum/m.count)
}

// readSplit reads mail's queue wait and scan duration sums from /metrics.
func readSplit(url string) mailSplit {
	resp, err := http.Get(url)
	if err != nil {
		return mailSplit{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m mailSplit
	for line := range strings.Lines(string(body)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasPrefix(f[0], `clamgate_queue_wait_seconds_sum{client="mail"`):
			m.waitSum = v
		case strings.HasPrefix(f[0], `clamgate_scan_duration_seconds_sum{client="mail"`):
			m.scanSum = v
		case strings.HasPrefix(f[0], `clamgate_scan_duration_seconds_count{client="mail"`):
			m.count = v
		}
	}
	return m
}

// cpuSplit is where the machine's CPU went during a scenario: the profile
// that says whether a target is reachable on this many cores.
type cpuSplit struct {
	clamd, self, flood, wall time.Duration
}

func (c cpuSplit) String() string {
	return fmt.Sprintf("CPU over %.0fs wall (x%d cores available): clamd %.1fs, gateway+mail clients %.1fs, flood clients %.1fs",
		c.wall.Seconds(), runtime.NumCPU(), c.clamd.Seconds(), c.self.Seconds(), c.flood.Seconds())
}

// procCPU is a process's user+system CPU time from /proc (clock ticks of
// 10 ms on Linux).
func procCPU(pid string) time.Duration {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which may hold spaces: utime is the
	// 14th field of the line, stime the 15th.
	rest := string(data[bytes.LastIndexByte(data, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func (r result) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}

func (r result) String() string {
	flood := fmt.Sprintf("flood %.1f MiB/s (%d errors)", r.floodMiB, r.floodErr)
	if len(r.lat) == 0 {
		return fmt.Sprintf("no mail scan finished (%d still waiting); %s", r.unfinished, flood)
	}
	slices.Sort(r.lat)
	return fmt.Sprintf("mail n=%-5d p50 %-10v p99 %-10v max %-10v failed %d unfinished %d; %s",
		len(r.lat), r.p(0.50).Round(100*time.Microsecond), r.p(0.99).Round(100*time.Microsecond),
		r.lat[len(r.lat)-1].Round(time.Millisecond), r.failed, r.unfinished, flood)
}

type setup struct {
	mails, floods int
	rate          float64 // mails a second arriving at random; 0 = s.mails clients back to back
	msz, fsz      int64
	d, warmup     time.Duration
	dir           string
	clamdPID      int
	metrics       string // the gateway's /metrics
}

// run measures one scenario. The flood runs in separate processes (each
// with its own random data), so that its clients do not share the
// measuring process's CPU scheduling and garbage collector; the
// scenario's clock starts once the flood has warmed up.
func (s setup) run(mailAddr, proxyAddr string) result {
	var r result
	var workers []*floodProc
	if proxyAddr != "" {
		from := time.Now().Add(s.warmup)
		until := from.Add(s.d)
		for range s.floods {
			w, err := startFlood(proxyAddr, s.fsz, from, until)
			if err != nil {
				fail(err)
			}
			workers = append(workers, w)
		}
		time.Sleep(time.Until(from))
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.d)
	defer cancel()
	end, _ := ctx.Deadline()
	start := time.Now()
	clamd0, self0 := procCPU(strconv.Itoa(s.clamdPID)), procCPU("self")
	split0 := readSplit(s.metrics)
	m := &mailer{addr: mailAddr, size: s.msz, end: end, r: &r}
	var wg sync.WaitGroup
	switch {
	case mailAddr == "":
	case s.rate > 0:
		wg.Go(func() { m.openLoop(ctx, s.rate) })
	default:
		for range s.mails {
			wg.Go(func() { m.closedLoop(ctx) })
		}
	}
	wg.Wait()
	<-ctx.Done()
	r.cpu = cpuSplit{clamd: procCPU(strconv.Itoa(s.clamdPID)) - clamd0, self: procCPU("self") - self0, wall: time.Since(start)}
	split := readSplit(s.metrics)
	r.split = mailSplit{waitSum: split.waitSum - split0.waitSum, scanSum: split.scanSum - split0.scanSum, count: split.count - split0.count}
	var floodBytes int64
	for _, w := range workers {
		n, errs := w.wait()
		floodBytes += n
		r.floodErr += errs
		if st := w.cmd.ProcessState; st != nil {
			r.cpu.flood += st.UserTime() + st.SystemTime() // includes the warm-up
		}
	}
	r.floodMiB = float64(floodBytes) / (1 << 20) / time.Since(start).Seconds()
	return r
}

// mailer sends the mail scans of one scenario and records them in r.
type mailer struct {
	addr string
	size int64
	end  time.Time
	mu   sync.Mutex
	r    *result
}

// closedLoop is one mail client scanning back to back: the load a fast
// MTA queue run puts on the engine, each scan timed from its start.
func (m *mailer) closedLoop(ctx context.Context) {
	payload := randomBytes(m.size)
	c, _ := clamd.New(m.addr, 10*time.Minute)
	for ctx.Err() == nil && time.Now().Before(m.end) {
		fresh(payload)
		t0 := time.Now()
		reply, err := c.Instream(ctx, bytes.NewReader(payload))
		m.record(ctx, reply, err, time.Since(t0))
	}
}

// openLoop sends mails as they arrive at a server, rate a second on
// average at random (Poisson) times, whatever the earlier ones still
// wait for; each is timed from its arrival, so that a slow engine counts
// its backlog too.
func (m *mailer) openLoop(ctx context.Context, rate float64) {
	var wg sync.WaitGroup
	defer wg.Wait()
	next := time.Now()
	for {
		next = next.Add(time.Duration(mathrand.ExpFloat64() / rate * float64(time.Second)))
		if next.After(m.end) {
			return
		}
		time.Sleep(time.Until(next))
		arrived := next
		wg.Go(func() {
			payload := randomBytes(m.size)
			c, _ := clamd.New(m.addr, 10*time.Minute)
			reply, err := c.Instream(ctx, bytes.NewReader(payload))
			m.record(ctx, reply, err, time.Since(arrived))
		})
	}
}

func (m *mailer) record(ctx context.Context, reply string, err error, lat time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case ctx.Err() != nil, time.Now().After(m.end):
		// The deadline's i/o timeout can come back a moment before ctx
		// reports it: not a failure.
		m.r.unfinished++
	case err != nil || reply != "stream: OK":
		if m.r.failed == 0 {
			fmt.Fprintf(os.Stderr, "mail scan failed: %q %v\n", reply, err)
		}
		m.r.failed++
	default:
		m.r.lat = append(m.r.lat, lat)
	}
}

// floodProc is one flood client process: it scans its own random stream
// in a loop until a deadline, and reports the bytes of the scans that
// finished after warm-up.
type floodProc struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startFlood(addr string, size int64, from, until time.Time) (*floodProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &floodProc{}
	p.cmd = exec.Command(self, "-flood-worker", addr, strconv.FormatInt(size, 10),
		strconv.FormatInt(from.UnixNano(), 10), strconv.FormatInt(until.UnixNano(), 10))
	p.cmd.Stdout, p.cmd.Stderr = &p.out, os.Stderr
	return p, p.cmd.Start()
}

func (p *floodProc) wait() (bytes int64, errs int) {
	_ = p.cmd.Wait()
	fmt.Sscan(p.out.String(), &bytes, &errs)
	return bytes, errs
}

// floodWorker is the flood process's main: ADDR SIZE FROM_NS UNTIL_NS.
// It scans until UNTIL and prints the bytes of the scans that ended after
// FROM (the end of the warm-up), and its errors.
func floodWorker(args []string) {
	if len(args) != 4 {
		fail(fmt.Errorf("flood worker: want ADDR SIZE FROM_NS UNTIL_NS"))
	}
	size, _ := strconv.ParseInt(args[1], 10, 64)
	fromNS, _ := strconv.ParseInt(args[2], 10, 64)
	untilNS, _ := strconv.ParseInt(args[3], 10, 64)
	from, until := time.Unix(0, fromNS), time.Unix(0, untilNS)
	payload := randomBytes(size)
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	c, _ := clamd.New(args[0], 10*time.Minute)
	var done int64
	errs := 0
	for ctx.Err() == nil && time.Now().Before(until) {
		fresh(payload)
		reply, err := c.Instream(ctx, bytes.NewReader(payload))
		switch {
		case ctx.Err() != nil, !time.Now().Before(until):
			// The deadline's i/o timeout can come back a moment before
			// ctx reports it: the end of the run, not a failure.
		case err != nil || reply != "stream: OK":
			errs++
			fmt.Fprintf(os.Stderr, "flood scan failed: %q %v\n", reply, err)
		case time.Now().After(from):
			done += size
		}
	}
	fmt.Println(done, errs)
}

// readiness polls /readyz through the whole run and counts answers that
// are not 200 (flaps).
type readiness struct {
	url          string
	polls, flaps int
	mu           sync.Mutex
}

func (r *readiness) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 5 * time.Second}
		for ctx.Err() == nil {
			resp, err := client.Get(r.url)
			r.mu.Lock()
			r.polls++
			if err != nil || resp.StatusCode != http.StatusOK {
				r.flaps++
			}
			r.mu.Unlock()
			if err == nil {
				resp.Body.Close()
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	return func() { cancel(); <-done }
}

func (r *readiness) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d of %d /readyz polls not 200 (target 0)", r.flaps, r.polls)
}

func startGateway(dir, clamdSock string, proxyConcurrent, bulkCap int) (mail, proxy, ready string) {
	mail, proxy = "unix:"+filepath.Join(dir, "mail.sock"), "unix:"+filepath.Join(dir, "proxy.sock")
	httpAddr := freePort()
	cfg, err := config.Parse("bench.toml", []byte(fmt.Sprintf(`
[backend]
address = "unix:%s"
stream_max_length = "100M"
timeout = "10m"
max_jobs = 10
bulk_cap = %d
health_interval = "1s"
[server]
audit = false
http = "tcp:%s"
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
`, clamdSock, bulkCap, httpAddr, mail, proxy, proxyConcurrent)))
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
	return mail, proxy, "http://" + httpAddr + "/readyz"
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// fresh makes payload a new file for clamd: clamd caches the hashes of
// clean files, and a bench that scans the same bytes again measures the
// cache (an 8 MiB stream then "scans" at over 100 MiB/s), not the engine.
func fresh(payload []byte) {
	if len(payload) >= 8 {
		binary.LittleEndian.PutUint64(payload, binary.LittleEndian.Uint64(payload)+1)
	}
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
