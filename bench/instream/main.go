// Command instream measures INSTREAM scans per second and per-scan latency
// against clamd directly and through the clamgate gateway, side by side, in
// one run, so that the gateway's cost can be read as a ratio and an added
// latency rather than guessed from two runs on a noisy machine.
//
// Both sides are driven by exactly the same client code: raw sockets, one
// connection per scan, "zINSTREAM\0", the object in chunks, the zero-length
// chunk, then the reply read up to its NUL. Rounds alternate between the two
// sides (ABAB, or ABBA with -order abba) after a warm-up of each, so that
// machine noise and drift fall on both sides alike.
//
// With -floor, a third side is measured in the same rotation: a bare
// byte-copying proxy in front of the same clamd (this program in -proxy
// mode, in its own process). It is the floor of what any proxy costs on the
// machine, so that the gateway's own overhead (gateway/floor) can be told
// from the cost of an extra hop (floor/direct).
//
// It is a measuring program, not a pass/fail test: it prints a table, then
// one machine-readable RESULT line per object size (and JSON with -json).
//
//	go run ./bench/instream -direct unix:/tmp/x/clamd.sock -gateway unix:/tmp/x/gw.sock
//	go run ./bench/instream -ping unix:/tmp/x/clamd.sock -wait 60s
//	go run ./bench/instream -proxy unix:/tmp/x/floor.sock -backend unix:/tmp/x/clamd.sock
//
// bench/run.sh starts a real clamd and the gateway and runs this program.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/bench/benchenv"
)

// okReply is clamd's reply to a clean INSTREAM.
const okReply = "stream: OK"

// eicar is the EICAR test string, which -infected puts into every object.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// infected: objects carry EICAR and a FOUND reply is the expected one.
var infected bool

type options struct {
	direct, gateway string
	floor           string
	sizes           []int
	chunk           int
	concurrency     int
	duration        time.Duration
	warmup          time.Duration
	rounds          int
	order           string
	unique          bool
	timeout         time.Duration
	jsonOut         bool
}

func main() {
	var o options
	var sizes, ping, proxy, backend string
	var wait time.Duration
	flag.StringVar(&o.direct, "direct", "", "clamd address: unix:/path or tcp:host:port")
	flag.StringVar(&o.gateway, "gateway", "", "gateway address: unix:/path or tcp:host:port")
	flag.StringVar(&o.floor, "floor", "", "optional third side: a bare proxy to the same clamd (see -proxy)")
	flag.StringVar(&sizes, "size", "4096", "object size in bytes (K/M suffixes allowed); a comma list runs each size in turn, e.g. 4096,1M")
	flag.IntVar(&o.chunk, "chunk", 64<<10, "INSTREAM chunk size in bytes")
	flag.IntVar(&o.concurrency, "concurrency", 4, "concurrent clients (each scan is its own connection)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up of each side before the measured rounds")
	flag.IntVar(&o.rounds, "rounds", 3, "measured rounds per side")
	flag.StringVar(&o.order, "order", "abab", "round order: abab (direct, gateway[, floor] every round) or abba (that order, then reversed, alternately)")
	flag.BoolVar(&o.unique, "unique", true, "make every scanned object distinct (defeats clamd's clean-file cache, as real traffic would)")
	flag.BoolVar(&infected, "infected", false, "put the EICAR test string into every object (at byte 32) and expect a FOUND reply: with -unique=false, a campaign of one infected attachment")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "deadline of one scan")
	flag.BoolVar(&o.jsonOut, "json", false, "also print the results as one JSON document")
	flag.StringVar(&ping, "ping", "", "only wait until this address answers PING (see -wait), then exit")
	flag.DurationVar(&wait, "wait", 60*time.Second, "with -ping: how long to wait")
	flag.StringVar(&proxy, "proxy", "", "only serve a bare byte-copying proxy on this unix:/path to -backend (the -floor side)")
	flag.StringVar(&backend, "backend", "", "with -proxy: the clamd to relay to")
	flag.Parse()

	if proxy != "" {
		if err := serveProxy(proxy, backend); err != nil {
			fatal("%v", err)
		}
		return
	}
	if ping != "" {
		if err := waitPing(ping, wait); err != nil {
			fatal("%v", err)
		}
		return
	}
	if o.direct == "" || o.gateway == "" {
		fatal("both -direct and -gateway are required (see -h)")
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := parseSize(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatal("bad -size %q", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.concurrency < 1 || o.rounds < 1 || o.chunk < 1 || o.duration <= 0 {
		fatal("-concurrency, -rounds, -chunk and -duration must be positive")
	}
	if o.order != "abab" && o.order != "abba" {
		fatal("-order must be abab or abba")
	}
	for _, a := range []string{o.direct, o.gateway, o.floor} {
		if a == "" {
			continue
		}
		if err := checkOnce(a, o); err != nil {
			fatal("%s: %v", a, err)
		}
	}

	floorNote := ""
	if o.floor != "" {
		floorNote = " floor=" + o.floor
	}
	fmt.Printf("instream bench: direct=%s gateway=%s%s concurrency=%d rounds=%d x %s (order %s) warmup=%s unique=%v chunk=%d CPUs=%d\n",
		o.direct, o.gateway, floorNote, o.concurrency, o.rounds, o.duration, o.order, o.warmup, o.unique, o.chunk, runtime.NumCPU())
	var all []sizeResult
	failed := false
	for _, size := range o.sizes {
		r := benchSize(o, size)
		all = append(all, r)
		printResult(r)
		if r.Direct.Errors > 0 || r.Gateway.Errors > 0 || (r.Floor != nil && r.Floor.Errors > 0) {
			failed = true
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			fatal("json: %v", err)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// side is what one endpoint measured.
type side struct {
	Name    string        `json:"name"`
	Addr    string        `json:"address"`
	Scans   int           `json:"scans"`
	Errors  int           `json:"errors"`
	Elapsed time.Duration `json:"elapsed_ns"`
	RPS     float64       `json:"rps"`
	P50     float64       `json:"p50_ms"`
	P90     float64       `json:"p90_ms"`
	P99     float64       `json:"p99_ms"`
	Max     float64       `json:"max_ms"`
	Mean    float64       `json:"mean_ms"`
	Rounds  []float64     `json:"round_rps"`
	FirstEr string        `json:"first_error,omitempty"`
	fig     benchenv.Side
}

type sizeResult struct {
	Size        int     `json:"size"`
	Concurrency int     `json:"concurrency"`
	Direct      *side   `json:"direct"`
	Gateway     *side   `json:"gateway"`
	Floor       *side   `json:"floor,omitempty"`
	Ratio       float64 `json:"ratio"`
	P50Added    float64 `json:"p50_added_ms"`
	P99Added    float64 `json:"p99_added_ms"`
	MeanAdded   float64 `json:"mean_added_ms"`
	// RatioSpread is the lowest and highest of the per-pair ratios
	// (gateway round i / direct round i): how much noise there is.
	RatioMin float64 `json:"ratio_min"`
	RatioMax float64 `json:"ratio_max"`
	// With -floor: the cost of a bare extra hop, and the gateway against it.
	FloorRatio        float64 `json:"floor_ratio,omitempty"`         // floor/direct
	GatewayFloorRatio float64 `json:"gateway_floor_ratio,omitempty"` // gateway/floor
}

func benchSize(o options, size int) sizeResult {
	d := &side{Name: "direct", Addr: o.direct}
	g := &side{Name: "gateway", Addr: o.gateway}
	sides := []*side{d, g}
	var f *side
	if o.floor != "" {
		f = &side{Name: "floor", Addr: o.floor}
		sides = append(sides, f)
	}
	fmt.Printf("\n== size %d bytes: warm-up %s per side\n", size, o.warmup)
	if o.warmup > 0 {
		for _, s := range sides {
			runRound(o, s.Addr, size, o.warmup)
		}
	}
	for i := 0; i < o.rounds; i++ {
		order := slices.Clone(sides)
		if o.order == "abba" && i%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			rr := runRound(o, s.Addr, size, o.duration)
			s.add(rr)
			slices.Sort(rr.lat)
			fmt.Printf("   round %d %-7s %8.1f scans/s  p50 %7.3f ms  p99 %7.3f ms  errors %d\n", i+1, s.Name, rr.rps(),
				benchenv.Ms(benchenv.Percentile(rr.lat, 50)), benchenv.Ms(benchenv.Percentile(rr.lat, 99)), rr.errors)
		}
	}
	for _, s := range sides {
		s.finish()
	}
	ratio := benchenv.Compare(&g.fig, &d.fig)
	res := sizeResult{Size: size, Concurrency: o.concurrency, Direct: d, Gateway: g, Floor: f,
		Ratio: ratio.Value, P50Added: g.P50 - d.P50, P99Added: g.P99 - d.P99, MeanAdded: g.Mean - d.Mean,
		RatioMin: ratio.Min, RatioMax: ratio.Max}
	if f != nil {
		res.FloorRatio, res.GatewayFloorRatio = benchenv.Compare(&f.fig, &d.fig).Value, benchenv.Compare(&g.fig, &f.fig).Value
	}
	return res
}

func (s *side) add(r roundResult) {
	s.fig.Name = s.Name
	s.fig.AddRound(r.lat, r.errors, r.elapsed, r.firstErr)
}

// finish copies the figures into the JSON fields.
func (s *side) finish() {
	f := &s.fig
	s.Scans, s.Errors, s.Elapsed, s.Rounds, s.FirstEr = f.Count, f.Errors, f.Elapsed, f.Rounds, f.FirstErr
	s.RPS, s.Mean = f.Rate(), benchenv.Ms(f.Mean())
	s.P50, s.P90, s.P99, s.Max = benchenv.Ms(f.Pct(50)), benchenv.Ms(f.Pct(90)), benchenv.Ms(f.Pct(99)), benchenv.Ms(f.Pct(100))
}

type roundResult struct {
	lat      []time.Duration
	errors   int
	elapsed  time.Duration
	firstErr error
}

func (r roundResult) rps() float64 { return float64(len(r.lat)) / r.elapsed.Seconds() }

// runRound keeps o.concurrency clients scanning addr for d. Only scans
// that finished inside the round count; elapsed runs until the last client
// has finished its last scan, so a slow straggler is paid for, not hidden.
func runRound(o options, addr string, size int, d time.Duration) roundResult {
	network, address, _ := strings.Cut(addr, ":")
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		res      roundResult
		stop     atomic.Bool
		seq      atomic.Uint64
		firstErr error
	)
	start := time.Now()
	end := start.Add(d)
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req := newRequest(size, o.chunk, uint64(w))
			reply := make([]byte, 256)
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			var werr error
			for !stop.Load() {
				if o.unique {
					req.stamp(seq.Add(1))
				}
				t0 := time.Now()
				err := scanOnce(network, address, req, reply, o.timeout)
				t1 := time.Now()
				if err != nil {
					errs++
					if werr == nil {
						werr = err
					}
				} else {
					lat = append(lat, t1.Sub(t0))
				}
				if t1.After(end) {
					stop.Store(true)
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			if firstErr == nil {
				firstErr = werr
			}
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.firstErr = firstErr
	return res
}

// request is one INSTREAM exchange, built once: the command, the object
// framed as chunks, and the terminating zero-length chunk.
type request struct {
	buf   []byte
	stamp func(n uint64)
}

// newRequest builds a clean object of size bytes: pseudo-random bytes
// (no signature of the test database can match them), the same for both
// sides. stamp writes a sequence number into the first bytes of the
// object so that every scan sends different content.
func newRequest(size, chunk int, worker uint64) *request {
	rng := rand.New(rand.NewPCG(0x636c616d, 0x67617465))
	obj := make([]byte, size)
	for i := range obj {
		obj[i] = byte(rng.Uint32())
	}
	if infected && size >= 32+len(eicar) {
		copy(obj[32:], eicar)
	}
	var b bytes.Buffer
	b.WriteString("zINSTREAM\x00")
	var hdr [4]byte
	stampAt := -1
	for off := 0; off < size; off += chunk {
		n := min(chunk, size-off)
		binary.BigEndian.PutUint32(hdr[:], uint32(n))
		b.Write(hdr[:])
		if off == 0 {
			stampAt = b.Len()
		}
		b.Write(obj[off : off+n])
	}
	b.Write([]byte{0, 0, 0, 0})
	r := &request{buf: b.Bytes()}
	r.stamp = func(n uint64) {
		// worker in the top byte so two workers never send the same
		// object; the stamp fits in the first chunk (or what there is of it).
		var s [16]byte
		binary.BigEndian.PutUint64(s[:8], worker<<56|n)
		binary.BigEndian.PutUint64(s[8:], n*0x9e3779b97f4a7c15)
		copy(r.buf[stampAt:stampAt+min(16, size, chunk)], s[:])
	}
	return r
}

// scanOnce is one scan on its own connection: dial, send the whole
// request, read the reply up to its NUL, close.
func scanOnce(network, address string, req *request, reply []byte, timeout time.Duration) error {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req.buf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got, err := readReply(c, reply)
	if err != nil {
		return err
	}
	if infected && (!strings.HasPrefix(got, "stream: ") || !strings.HasSuffix(got, " FOUND")) || !infected && got != okReply {
		return fmt.Errorf("unexpected reply %q", got)
	}
	return nil
}

// readReply reads up to the NUL terminator (EOF after some bytes also ends
// a reply, as clamd closes after answering).
func readReply(c net.Conn, buf []byte) (string, error) {
	n := 0
	for {
		if n == len(buf) {
			return "", fmt.Errorf("reply too long: %q", buf[:n])
		}
		m, err := c.Read(buf[n:])
		if i := bytes.IndexByte(buf[n:n+m], 0); i >= 0 {
			return string(buf[:n+i]), nil
		}
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) && n > 0 {
				return string(buf[:n]), nil
			}
			return "", fmt.Errorf("read reply: %w", err)
		}
	}
}

// checkOnce makes one scan of every size so that a wrong address or a
// refusing policy fails before minutes of measuring.
func checkOnce(addr string, o options) error {
	network, address, ok := strings.Cut(addr, ":")
	if !ok || (network != "unix" && network != "tcp") {
		return fmt.Errorf("want unix:/path or tcp:host:port")
	}
	for _, size := range o.sizes {
		if err := scanOnce(network, address, newRequest(size, o.chunk, 255), make([]byte, 256), o.timeout); err != nil {
			return fmt.Errorf("size %d: %w", size, err)
		}
	}
	return nil
}

func waitPing(addr string, wait time.Duration) error {
	network, address, ok := strings.Cut(addr, ":")
	if !ok {
		return fmt.Errorf("%s: want unix:/path or tcp:host:port", addr)
	}
	deadline := time.Now().Add(wait)
	var last error
	for time.Now().Before(deadline) {
		last = func() error {
			c, err := net.DialTimeout(network, address, time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("zPING\x00")); err != nil {
				return err
			}
			got, err := readReply(c, make([]byte, 64))
			if err != nil {
				return err
			}
			if got != "PONG" {
				return fmt.Errorf("PING answered %q", got)
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer PING within %s: %v", addr, wait, last)
}

// serveProxy is the -floor side: accept, dial the backend, copy bytes both
// ways, nothing else. No parsing, no policy, no logging: what remains is the
// cost of one more hop (accept, connect, two copies, wake-ups).
func serveProxy(listen, backend string) error {
	lnet, laddr, ok := strings.Cut(listen, ":")
	bnet, baddr, ok2 := strings.Cut(backend, ":")
	if !ok || !ok2 || lnet != "unix" {
		return fmt.Errorf("-proxy unix:/path -backend unix:/path|tcp:host:port")
	}
	_ = os.Remove(laddr)
	l, err := net.Listen(lnet, laddr)
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue
		}
		go func() {
			defer c.Close()
			b, err := net.Dial(bnet, baddr)
			if err != nil {
				return
			}
			defer b.Close()
			go func() {
				_, _ = io.Copy(b, c)
				if cw, ok := b.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
			}()
			_, _ = io.Copy(c, b)
		}()
	}
}

func printResult(r sizeResult) {
	fmt.Printf("\n   size %d bytes, concurrency %d\n", r.Size, r.Concurrency)
	figs := []*benchenv.Side{&r.Direct.fig, &r.Gateway.fig}
	if r.Floor != nil {
		figs = append(figs, &r.Floor.fig)
	}
	benchenv.Print(os.Stdout, "scans", figs)
	fmt.Printf("   targets: gateway/direct >= 0.97: %s; p99 added < 0.5 ms: %s\n", verdict(r.Ratio >= 0.97), verdict(r.P99Added < 0.5))
	if f := r.Floor; f != nil {
		fmt.Printf("   gateway/floor (its own cost, without the hop's): throughput %.3f; added p50 %+.3f ms, p99 %+.3f ms\n",
			r.GatewayFloorRatio, r.Gateway.P50-f.P50, r.Gateway.P99-f.P99)
	}
	line := fmt.Sprintf("RESULT size=%d concurrency=%d ratio=%.3f direct_rps=%.1f gateway_rps=%.1f direct_p50_ms=%.3f gateway_p50_ms=%.3f direct_p99_ms=%.3f gateway_p99_ms=%.3f p50_added_ms=%.3f p99_added_ms=%.3f mean_added_ms=%.3f direct_errors=%d gateway_errors=%d",
		r.Size, r.Concurrency, r.Ratio, r.Direct.RPS, r.Gateway.RPS, r.Direct.P50, r.Gateway.P50,
		r.Direct.P99, r.Gateway.P99, r.P50Added, r.P99Added, r.MeanAdded, r.Direct.Errors, r.Gateway.Errors)
	if f := r.Floor; f != nil {
		line += fmt.Sprintf(" floor_rps=%.1f floor_p50_ms=%.3f floor_p99_ms=%.3f floor_ratio=%.3f gateway_floor_ratio=%.3f floor_errors=%d",
			f.RPS, f.P50, f.P99, r.FloorRatio, r.GatewayFloorRatio, f.Errors)
	}
	fmt.Println(line)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	return n * mult, err
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "instream: "+format+"\n", args...)
	os.Exit(2)
}
