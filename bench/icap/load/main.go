// Command load drives ICAP RESPMOD requests the way squid sends them, against
// one or more ICAP servers side by side, and reports responses per second and
// latency. It is the driver of bench/icap/run.sh; standard library only.
//
// Every side gets the same client code: persistent connections, one OPTIONS
// per connection to learn the service's preview size, then RESPMOD requests
// with "Preview: min(server's, 1024)" and "Allow: 204" (unless -no204). The
// preview goes out with the headers; after "100 Continue" the rest of the body
// follows in -chunk byte chunks. The full response is read: 204, or 200 with
// the chunked body, which is then compared with what was sent.
//
//	load -side gateway=127.0.0.1:1344 -side c-icap=127.0.0.1:1345 -size 4096 -concurrency 8
//	load -check -side gateway=127.0.0.1:1344 -size 10485760   # EICAR sanity check
//	load -wait 127.0.0.1:1344 -timeout 30s                    # until OPTIONS answers
//	load -freeport                                            # print a free TCP port
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/bench/benchenv"
)

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// bodyPrefix starts every body: binary (not text) and no known magic, so that
// c-icap's virus_scan classifies every body alike (group DATA, scanned).
var bodyPrefix = []byte("\x00\x01CGBENCH")

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type side struct {
	name, addr string
}

type watch struct {
	name string
	pid  int
}

var (
	service     = flag.String("service", "avscan", "ICAP service name (path of the ICAP URI)")
	size        = flag.Int("size", 4096, "body size in bytes")
	concurrency = flag.Int("concurrency", 8, "concurrent workers, one persistent connection each")
	duration    = flag.Duration("duration", 8*time.Second, "length of one round of one side")
	requests    = flag.Int("n", 0, "requests per round per side instead of -duration (0: use -duration)")
	rounds      = flag.Int("rounds", 3, "rounds; every round runs every side once")
	order       = flag.String("order", "abab", "abab: same side order every round; abba: reversed every other round")
	warmup      = flag.Duration("warmup", 2*time.Second, "warm-up of every side before the rounds")
	no204       = flag.Bool("no204", false, "do not send Allow: 204: the server must echo the body back (squid's large-body path)")
	maxPreview  = flag.Int("preview", 1024, "largest preview to send (the server's OPTIONS Preview caps it)")
	chunk       = flag.Int("chunk", 64<<10, "chunk size for the body after the preview")
	timeout     = flag.Duration("timeout", 120*time.Second, "deadline of one request")
	check       = flag.Bool("check", false, "sanity check instead of a benchmark: EICAR, a -size body with EICAR at its end, and a clean -size body")
	waitAddr    = flag.String("wait", "", "wait until HOST:PORT answers OPTIONS with 200 (or clamd at unix:PATH answers PING), then exit")
	freePort    = flag.Bool("freeport", false, "print a free TCP port on 127.0.0.1 and exit")
	label       = flag.String("label", "", "label for the RESULT line (default: size and mode)")
)

var sides, watches multi

func main() {
	flag.Var(&sides, "side", "NAME=HOST:PORT of an ICAP server; the first is A, the second B (repeatable)")
	flag.Var(&watches, "watch", "NAME=PID: report the CPU time of this process (and its children) per response (repeatable); the driver's own is always reported")
	flag.Parse()
	switch {
	case *freePort:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fatal(err)
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		return
	case *waitAddr != "":
		deadline := time.Now().Add(*timeout)
		if path, ok := strings.CutPrefix(*waitAddr, "unix:"); ok { // clamd: PING
			for {
				err := clamdPing(path)
				if err == nil {
					return
				}
				if time.Now().After(deadline) {
					fatal(fmt.Errorf("%s: no PONG: %v", *waitAddr, err))
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		for {
			c, err := dial(*waitAddr)
			if err == nil {
				_, err = c.options()
				c.close()
				if err == nil {
					return
				}
			}
			if time.Now().After(deadline) {
				fatal(fmt.Errorf("%s: no OPTIONS answer: %v", *waitAddr, err))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var ss []side
	for _, s := range sides {
		name, addr, ok := strings.Cut(s, "=")
		if !ok || name == "" || addr == "" {
			fatal(fmt.Errorf("-side %q: want NAME=HOST:PORT", s))
		}
		ss = append(ss, side{name, addr})
	}
	if len(ss) == 0 {
		fatal(errors.New("no -side given"))
	}
	var ws []watch
	for _, w := range watches {
		name, p, ok := strings.Cut(w, "=")
		pid, err := strconv.Atoi(p)
		if !ok || err != nil || pid <= 0 {
			fatal(fmt.Errorf("-watch %q: want NAME=PID", w))
		}
		ws = append(ws, watch{name, pid})
	}
	if *check {
		ok := true
		for _, s := range ss {
			ok = runCheck(s) && ok
		}
		if !ok {
			os.Exit(1)
		}
		return
	}
	bench(ss, append(ws, watch{"driver", os.Getpid()}))
}

func clamdPing(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if string(bytes.TrimRight(b, "\x00\n")) != "PONG" {
		return fmt.Errorf("reply %q (%v)", b, err)
	}
	return nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(2)
}

// ---- ICAP client ----

type client struct {
	addr    string
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	preview int // preview to send; -1: none
}

func dial(addr string) (*client, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{addr: addr, c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10), preview: -1}, nil
}

func (c *client) close() { c.c.Close() }

// response is an ICAP response with its encapsulated parts read.
type response struct {
	code    int
	header  map[string]string // canonical-ish: lower-case keys, last value wins
	httpHdr []byte
	bodyLen int64
	bodyOK  bool // the echoed body matched what was sent (when compared)
	close   bool
}

func (c *client) options() (*response, error) {
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c.w, "OPTIONS icap://%s/%s ICAP/1.0\r\nHost: %s\r\nEncapsulated: null-body=0\r\n\r\n", c.addr, *service, c.addr)
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	resp, err := c.readResponse(nil)
	if err != nil {
		return nil, err
	}
	if resp.code != 200 {
		return resp, fmt.Errorf("OPTIONS: ICAP %d", resp.code)
	}
	c.preview = -1
	if p, ok := resp.header["preview"]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err == nil && n >= 0 {
			c.preview = min(n, *maxPreview)
		}
	}
	return resp, nil
}

// readResponse reads one ICAP response. A body in it is compared with
// expect when expect is not nil.
func (c *client) readResponse(expect []byte) (*response, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading status line: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "ICAP/") {
		return nil, fmt.Errorf("bad status line %q", strings.TrimSpace(line))
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return nil, fmt.Errorf("bad status line %q", strings.TrimSpace(line))
	}
	resp := &response{code: code, header: map[string]string{}}
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("reading headers: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		resp.header[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	resp.close = strings.EqualFold(resp.header["connection"], "close")
	if code == 100 {
		return resp, nil
	}
	enc := resp.header["encapsulated"]
	if enc == "" {
		return resp, nil
	}
	hdrLen, hasBody := 0, false
	for _, part := range strings.Split(enc, ",") {
		name, off, _ := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(off)
		if err != nil {
			return nil, fmt.Errorf("bad Encapsulated %q", enc)
		}
		if strings.HasSuffix(name, "-body") {
			hdrLen, hasBody = n, name != "null-body"
		}
	}
	resp.httpHdr = make([]byte, hdrLen)
	if _, err := io.ReadFull(c.r, resp.httpHdr); err != nil {
		return nil, fmt.Errorf("reading encapsulated headers: %w", err)
	}
	if hasBody {
		resp.bodyOK = expect != nil
		if err := c.readChunked(resp, expect); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (c *client) readChunked(resp *response, expect []byte) error {
	var buf []byte
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading chunk size: %w", err)
		}
		sz, _, _ := strings.Cut(strings.TrimSpace(l), ";")
		n, err := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad chunk size line %q", strings.TrimSpace(l))
		}
		if n == 0 {
			for { // trailer up to the empty line
				l, err := c.r.ReadString('\n')
				if err != nil {
					return fmt.Errorf("reading trailer: %w", err)
				}
				if strings.TrimRight(l, "\r\n") == "" {
					return nil
				}
			}
		}
		for n > 0 {
			if cap(buf) == 0 {
				buf = make([]byte, 64<<10)
			}
			m, err := c.r.Read(buf[:min(int64(len(buf)), n)])
			if m > 0 {
				if expect != nil {
					off := resp.bodyLen
					if off+int64(m) > int64(len(expect)) || !bytes.Equal(buf[:m], expect[off:off+int64(m)]) {
						resp.bodyOK = false
					}
				}
				resp.bodyLen += int64(m)
				n -= int64(m)
			}
			if err != nil {
				return fmt.Errorf("reading chunk: %w", err)
			}
		}
		if _, err := c.r.Discard(2); err != nil { // CRLF after the chunk data
			return fmt.Errorf("reading chunk end: %w", err)
		}
	}
}

var reqHdr = []byte("GET http://bench.example/object HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: clamgate-bench\r\n\r\n")

// respmod sends body as squid does and returns the final response.
func (c *client) respmod(body []byte, allow204 bool) (*response, error) {
	c.c.SetDeadline(time.Now().Add(*timeout))
	resHdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body))
	fmt.Fprintf(c.w, "RESPMOD icap://%s/%s ICAP/1.0\r\nHost: %s\r\n", c.addr, *service, c.addr)
	if allow204 {
		c.w.WriteString("Allow: 204\r\n")
	}
	rest := body
	if c.preview >= 0 {
		fmt.Fprintf(c.w, "Preview: %d\r\n", c.preview)
	}
	fmt.Fprintf(c.w, "Encapsulated: req-hdr=0, res-hdr=%d, res-body=%d\r\n\r\n", len(reqHdr), len(reqHdr)+len(resHdr))
	c.w.Write(reqHdr)
	c.w.WriteString(resHdr)
	var expect []byte
	if !allow204 {
		expect = body
	}
	if c.preview >= 0 {
		p := min(c.preview, len(body))
		if p > 0 {
			fmt.Fprintf(c.w, "%x\r\n", p)
			c.w.Write(body[:p])
			c.w.WriteString("\r\n")
		}
		rest = body[p:]
		if len(rest) == 0 {
			c.w.WriteString("0; ieof\r\n\r\n")
		} else {
			c.w.WriteString("0\r\n\r\n")
		}
		if err := c.w.Flush(); err != nil {
			return nil, err
		}
		if len(rest) == 0 {
			return c.readResponse(expect)
		}
		resp, err := c.readResponse(expect)
		if err != nil || resp.code != 100 {
			return resp, err // answered on the preview alone
		}
	}
	// The rest goes out while the response is read, so that a server that
	// starts answering early cannot deadlock with this writer.
	werr := make(chan error, 1)
	go func() { werr <- c.writeChunks(rest) }()
	resp, err := c.readResponse(expect)
	if e := <-werr; err == nil && e != nil {
		err = fmt.Errorf("sending body: %w", e)
	}
	return resp, err
}

func (c *client) writeChunks(rest []byte) error {
	for len(rest) > 0 {
		n := min(*chunk, len(rest))
		fmt.Fprintf(c.w, "%x\r\n", n)
		c.w.Write(rest[:n])
		c.w.WriteString("\r\n")
		rest = rest[n:]
	}
	c.w.WriteString("0\r\n\r\n")
	return c.w.Flush()
}

// ---- bodies ----

// newBody is a clean pseudo-random body; stamp makes each request's unique,
// which defeats clamd's clean-file cache as real traffic would.
func newBody(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, bodyPrefix)
	return b
}

func stamp(b []byte, worker int, seq uint64) {
	if len(b) < len(bodyPrefix)+16 {
		rand.Read(b[:min(len(b), 16)])
		return
	}
	binary.LittleEndian.PutUint64(b[len(bodyPrefix):], uint64(worker)<<48|seq)
	rand.Read(b[len(bodyPrefix)+8 : len(bodyPrefix)+16])
}

// ---- sanity check ----

func infected(r *response) bool {
	if r == nil {
		return false
	}
	_, a := r.header["x-infection-found"]
	_, b := r.header["x-virus-id"]
	return r.code == 200 && (a || b || bytes.Contains(r.httpHdr, []byte(" 403 ")))
}

func runCheck(s side) bool {
	ok := true
	one := func(what string, body []byte, allow204, wantInfected bool) {
		c, err := dial(s.addr)
		if err == nil {
			_, err = c.options()
		}
		var r *response
		if err == nil {
			r, err = c.respmod(body, allow204)
			c.close()
		}
		switch {
		case err != nil:
			fmt.Printf("check %-8s %-40s FAIL: %v\n", s.name, what, err)
			ok = false
		case wantInfected && !infected(r):
			fmt.Printf("check %-8s %-40s FAIL: ICAP %d, no infection reported\n", s.name, what, r.code)
			ok = false
		case wantInfected:
			fmt.Printf("check %-8s %-40s ok: ICAP %d, X-Infection-Found: %s\n", s.name, what, r.code, r.header["x-infection-found"])
		case allow204 && r.code != 204:
			fmt.Printf("check %-8s %-40s FAIL: ICAP %d, want 204\n", s.name, what, r.code)
			ok = false
		case !allow204 && (r.code != 200 || !r.bodyOK || r.bodyLen != int64(len(body))):
			fmt.Printf("check %-8s %-40s FAIL: ICAP %d, echoed %d bytes (match %v), want 200 with the %d bytes\n", s.name, what, r.code, r.bodyLen, r.bodyOK, len(body))
			ok = false
		default:
			fmt.Printf("check %-8s %-40s ok: ICAP %d (preview %d, %d bytes echoed)\n", s.name, what, r.code, c.preview, r.bodyLen)
		}
	}
	one("EICAR alone", []byte(eicar), true, true)
	tail := newBody(*size)
	copy(tail[len(tail)-len(eicar):], eicar)
	one(fmt.Sprintf("%d-byte body, EICAR at its end", *size), tail, true, true)
	head := newBody(*size)
	copy(head[len(bodyPrefix)+16:], eicar)
	one(fmt.Sprintf("%d-byte body, EICAR after the prefix", *size), head, !*no204, true)
	one(fmt.Sprintf("%d-byte clean body", *size), newBody(*size), true, false)
	if *no204 {
		one(fmt.Sprintf("%d-byte clean body, no 204", *size), newBody(*size), false, false)
	}
	return ok
}

// ---- benchmark ----

type roundResult struct {
	side     int
	round    int
	n        int
	errors   int
	elapsed  time.Duration
	lat      []time.Duration
	cpu      []float64 // seconds, per watch
	other    float64   // CPUs busy with anything not watched: the noise
	firstErr string
}

func (r *roundResult) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func runRound(s side, si int, ws []watch, d time.Duration, n int) *roundResult {
	var (
		mu       sync.Mutex
		res      = &roundResult{side: si}
		issued   atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
		allow204 = !*no204
	)
	bodies := make([][]byte, *concurrency) // made before the clock starts
	for i := range bodies {
		bodies[i] = newBody(*size)
	}
	cpu0 := make([]float64, len(ws))
	for i, w := range ws {
		cpu0[i] = procCPU(w.pid)
	}
	busy0 := machineBusy()
	start := time.Now()
	if n == 0 {
		time.AfterFunc(d, func() { stop.Store(true) })
	}
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			body := bodies[w]
			var lat []time.Duration
			var nerr int
			var firstErr string
			var c *client
			fail := func(msg string) {
				nerr++
				if firstErr == "" {
					firstErr = msg
				}
				if c != nil {
					c.close()
					c = nil
				}
				time.Sleep(10 * time.Millisecond)
			}
			for seq := uint64(0); ; seq++ {
				if n > 0 {
					if issued.Add(1) > int64(n) {
						break
					}
				} else if stop.Load() {
					break
				}
				if c == nil {
					var err error
					if c, err = dial(s.addr); err == nil {
						_, err = c.options()
					}
					if err != nil {
						fail(err.Error())
						continue
					}
				}
				stamp(body, w, seq)
				t0 := time.Now()
				r, err := c.respmod(body, allow204)
				el := time.Since(t0)
				switch {
				case err != nil:
					fail(err.Error())
					continue
				case allow204 && r.code != 204:
					fail(fmt.Sprintf("ICAP %d, want 204", r.code))
					continue
				case !allow204 && (r.code != 200 || !r.bodyOK || r.bodyLen != int64(len(body))):
					fail(fmt.Sprintf("ICAP %d with %d bytes (match %v), want 200 echoing %d bytes", r.code, r.bodyLen, r.bodyOK, len(body)))
					continue
				}
				lat = append(lat, el)
				if r.close {
					c.close()
					c = nil
				}
			}
			if c != nil {
				c.close()
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += nerr
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	res.cpu = make([]float64, len(ws))
	ours := 0.0
	for i, w := range ws {
		res.cpu[i] = procCPU(w.pid) - cpu0[i]
		ours += res.cpu[i]
	}
	if len(ws) > 0 {
		res.other = (machineBusy() - busy0 - ours) / res.elapsed.Seconds()
	}
	return res
}

func bench(ss []side, ws []watch) {
	mode := "204"
	if *no204 {
		mode = "no204"
	}
	lab := *label
	if lab == "" {
		lab = fmt.Sprintf("%s/%s", human(*size), mode)
	}
	fmt.Printf("# %s: RESPMOD, %d-byte clean bodies, concurrency %d, %d rounds x %s, order %s, Allow: 204 %v\n",
		lab, *size, *concurrency, *rounds, roundLen(), *order, !*no204)
	if *warmup > 0 {
		for i, s := range ss {
			r := runRound(s, i, nil, *warmup, 0)
			fmt.Printf("  warm-up %-8s %7.1f resp/s, %d errors%s\n", s.name, r.rps(), r.errors, errNote(r))
		}
	}
	var all []*roundResult
	for round := 0; round < *rounds; round++ {
		idx := make([]int, len(ss))
		for i := range idx {
			idx[i] = i
		}
		if *order == "abba" && round%2 == 1 {
			for i, j := 0, len(idx)-1; i < j; i, j = i+1, j-1 {
				idx[i], idx[j] = idx[j], idx[i]
			}
		}
		for _, i := range idx {
			r := runRound(ss[i], i, ws, *duration, *requests)
			r.round = round
			all = append(all, r)
			sort.Slice(r.lat, func(a, b int) bool { return r.lat[a] < r.lat[b] })
			fmt.Printf("  round %d %-8s %8.1f resp/s  p50 %8.2f ms  p99 %8.2f ms  n=%d errors=%d%s%s\n", round+1, ss[i].name,
				r.rps(), benchenv.Ms(benchenv.Percentile(r.lat, 50)), benchenv.Ms(benchenv.Percentile(r.lat, 99)), r.n, r.errors, cpuNote(ws, r), errNote(r))
		}
	}
	figs := make([]*benchenv.Side, len(ss))
	other := make([]float64, len(ss)) // CPUs busy with anything not watched, mean over the rounds
	cpu := make([][]float64, len(ws)) // µs per response, per watch and side
	for k := range ws {
		cpu[k] = make([]float64, len(ss))
	}
	for i, s := range ss {
		figs[i] = &benchenv.Side{Name: s.name}
		for _, r := range all {
			if r.side != i {
				continue
			}
			var first error
			if r.firstErr != "" {
				first = errors.New(r.firstErr)
			}
			figs[i].AddRound(r.lat, r.errors, r.elapsed, first)
			other[i] += r.other / float64(*rounds)
			for k := range ws {
				cpu[k][i] += r.cpu[k]
			}
		}
		for k := range ws {
			if n := figs[i].Count; n > 0 {
				cpu[k][i] = cpu[k][i] / float64(n) * 1e6
			}
		}
	}
	// The last side (c-icap) is the baseline the others are measured against.
	order := slices.Clone(figs)
	slices.Reverse(order)
	cols := []benchenv.Column{{Name: "other load CPUs", Values: reversed(other)}}
	for k, w := range ws {
		cols = append(cols, benchenv.Column{Name: "cpu " + w.name + " µs/resp", Values: reversed(cpu[k])})
	}
	benchenv.Print(os.Stdout, "resp", order, cols...)
	var kv []string
	kv = append(kv, "label="+strings.ReplaceAll(lab, " ", "_"), fmt.Sprintf("size=%d", *size), fmt.Sprintf("concurrency=%d", *concurrency), "mode="+mode)
	for i, s := range ss {
		k, f := key(s.name), figs[i]
		kv = append(kv, fmt.Sprintf("%s_rps=%.1f %s_p50_ms=%.3f %s_p99_ms=%.3f %s_mean_ms=%.3f %s_n=%d %s_errors=%d %s_other_cpus=%.2f",
			k, f.Rate(), k, benchenv.Ms(f.Pct(50)), k, benchenv.Ms(f.Pct(99)), k, benchenv.Ms(f.Mean()), k, f.Count, k, f.Errors, k, other[i]))
		for j, w := range ws {
			kv = append(kv, fmt.Sprintf("%s_cpu_%s_us=%.0f", k, key(w.name), cpu[j][i]))
		}
	}
	if len(ss) >= 2 {
		a, b := figs[0], figs[1]
		r := benchenv.Compare(a, b)
		p99r := float64(a.Pct(99)) / float64(b.Pct(99))
		met := "MET"
		if r.Value < 1.5 || a.Pct(99) > b.Pct(99) || a.Errors+b.Errors > 0 {
			met = "MISSED"
		}
		fmt.Printf("  target: %s/%s throughput >= 1.5x at an equal or lower p99: %s\n", ss[0].name, ss[1].name, met)
		kv = append(kv, fmt.Sprintf("ratio=%.3f ratio_min=%.3f ratio_max=%.3f p99_ratio=%.3f target=%s", r.Value, r.Min, r.Max, p99r, met))
	}
	fmt.Println("RESULT " + strings.Join(kv, " "))
}

func reversed(v []float64) []float64 {
	c := slices.Clone(v)
	slices.Reverse(c)
	return c
}

func roundLen() string {
	if *requests > 0 {
		return fmt.Sprintf("%d requests", *requests)
	}
	return duration.String()
}

func errNote(r *roundResult) string {
	if r.firstErr == "" {
		return ""
	}
	return " (first error: " + r.firstErr + ")"
}

func cpuNote(ws []watch, r *roundResult) string {
	var b strings.Builder
	if len(ws) > 0 {
		fmt.Fprintf(&b, "  other load %.2f CPUs", r.other)
	}
	for i, w := range ws {
		if r.n > 0 {
			fmt.Fprintf(&b, "  cpu %s %.0f µs/resp", w.name, r.cpu[i]/float64(r.n)*1e6)
		}
	}
	return b.String()
}

func key(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, name)
}

func human(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// procCPU is the CPU time, in seconds, of pid and its live descendants,
// plus what its reaped children used (cutime, cstime).
func procCPU(pid int) float64 {
	type st struct {
		ppid        int
		self, child float64
	}
	all := map[int]st{}
	ents, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, e := range ents {
		data, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 15 {
			continue
		}
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(e)))
		ppid, _ := strconv.Atoi(f[1])
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		cu, _ := strconv.ParseFloat(f[13], 64)
		cs, _ := strconv.ParseFloat(f[14], 64)
		all[p] = st{ppid, (u + s) / 100, (cu + cs) / 100}
	}
	root, ok := all[pid]
	if !ok {
		return 0
	}
	total := root.self + root.child
	kids := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for p, s := range all {
			if !kids[p] && kids[s.ppid] {
				kids[p] = true
				total += s.self
				changed = true
			}
		}
	}
	return total
}

// machineBusy is the CPU time, in seconds, the whole machine spent busy
// (everything in /proc/stat's cpu line except idle and iowait).
func machineBusy() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	total := 0.0
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		total += x
	}
	return total / 100
}
