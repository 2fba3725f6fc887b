// Command milter measures mail scanning through two milters side by side,
// in one run against the same clamd: clamgate's milter front and
// clamav-milter. It plays the MTA with go-milter's client, the way postfix
// does: one milter connection per message, connect, HELO, MAIL, RCPT,
// DATA, the headers, the body in 64 KiB chunks, end of message, and the
// message must be accepted. Rounds alternate between the two sides after a
// warm-up of each, so that noise on a shared machine falls on both alike;
// what it reports are ratios of rounds measured next to each other.
//
// It is a measuring program, not a pass/fail test: it prints a table and
// one RESULT line per message size.
//
//	go run ./bench/milter -a unix:/tmp/x/gw.sock -b unix:/tmp/x/clamav-milter.sock -size 20K,5M
//
// bench/milter/run.sh starts clamd, the gateway and clamav-milter and runs it.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/bench/benchenv"
	"clamgate/internal/config"

	gomilter "github.com/d--j/go-milter"
)

type side struct {
	benchenv.Side
	client *gomilter.Client
	pid    int           // the milter's process, for its CPU time; 0 = unknown
	cpu    time.Duration // the milter's CPU over the measured rounds
	clamd  time.Duration // clamd's CPU over this side's measured rounds
}

type options struct {
	clamdPID    int
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
}

func main() {
	var o options
	var a, b, sizes, nameA, nameB string
	flag.StringVar(&a, "a", "", "first milter: unix:/path or tcp:host:port (clamgate)")
	flag.StringVar(&b, "b", "", "second milter: unix:/path or tcp:host:port (clamav-milter)")
	flag.StringVar(&nameA, "a-name", "clamgate", "name of the first milter in the report")
	flag.StringVar(&nameB, "b-name", "clamav-milter", "name of the second milter in the report")
	flag.StringVar(&sizes, "size", "20K,5M", "message sizes, comma separated; under 1M: a text mail of that size, from 1M: a mail with an attachment of that size (base64)")
	flag.IntVar(&o.concurrency, "concurrency", 4, "concurrent MTA connections")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up of each side before each size")
	flag.IntVar(&o.rounds, "rounds", 3, "measured rounds per side")
	var pidA, pidB int
	flag.IntVar(&pidA, "a-pid", 0, "process id of the first milter: report its CPU time per message")
	flag.IntVar(&pidB, "b-pid", 0, "process id of the second milter")
	flag.IntVar(&o.clamdPID, "clamd-pid", 0, "process id of clamd: report its CPU time per message for each side")
	flag.Parse()
	if a == "" || b == "" {
		fmt.Fprintln(os.Stderr, "milter: -a and -b are required")
		os.Exit(2)
	}
	status := 0
	for _, s := range strings.Split(sizes, ",") {
		n, err := config.ParseSize(s)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "milter: bad size %q\n", s)
			os.Exit(2)
		}
		sides := []*side{newSide(nameA, a, pidA), newSide(nameB, b, pidB)}
		if !run(o, int(n), sides) {
			status = 1
		}
	}
	os.Exit(status)
}

func newSide(name, addr string, pid int) *side {
	network, address, _ := strings.Cut(addr, ":")
	return &side{Side: benchenv.Side{Name: name}, pid: pid, client: gomilter.NewClient(network, address, gomilter.WithReadTimeout(5*time.Minute))}
}

// cpuTime is a process's user+system time: unlike wall time on a shared
// machine, it says what each message cost, whatever else ran meanwhile.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+sy) * time.Second / 100 // USER_HZ is 100 on Linux
}

// run measures one message size on every side; false when a side failed.
func run(o options, size int, sides []*side) bool {
	gen := newGenerator(size)
	for _, s := range sides {
		round(o, s, gen, o.warmup, false)
	}
	for r := 0; r < o.rounds; r++ {
		order := sides
		if r%2 == 1 {
			order = []*side{sides[1], sides[0]} // ABBA: drift falls on both
		}
		for _, s := range order {
			round(o, s, gen, o.duration, true)
		}
	}
	return report(o, size, gen.kind, sides)
}

// round runs concurrency MTAs for d and records what they measured.
func round(o options, s *side, gen *generator, d time.Duration, record bool) {
	var mu sync.Mutex
	var lat []time.Duration
	var first error
	var errs atomic.Int64
	var wg sync.WaitGroup
	cpu0, clamd0 := cpuTime(s.pid), cpuTime(o.clamdPID)
	start := time.Now()
	deadline := start.Add(d)
	for range o.concurrency {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := send(s.client, gen.next()); err != nil {
					errs.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if !record {
		return
	}
	s.AddRound(lat, int(errs.Load()), time.Since(start), first)
	s.cpu += cpuTime(s.pid) - cpu0
	s.clamd += cpuTime(o.clamdPID) - clamd0
}

// send passes one message through the milter as postfix would.
func send(c *gomilter.Client, m message) error {
	sess, err := c.Session(gomilter.NewMacroBag())
	if err != nil {
		return err
	}
	defer sess.Close()
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			return sess.Conn("client.example.org", gomilter.FamilyInet, 25000, "192.0.2.1")
		},
		func() (*gomilter.Action, error) { return sess.Helo("client.example.org") },
		func() (*gomilter.Action, error) { return sess.Mail("<sender@example.org>", "") },
		func() (*gomilter.Action, error) { return sess.Rcpt("<user@example.net>", "") },
		sess.DataStart,
	}
	for _, h := range m.headers {
		steps = append(steps, func() (*gomilter.Action, error) { return sess.HeaderField(h[0], h[1], nil) })
	}
	steps = append(steps, sess.HeaderEnd)
	for body := m.body; len(body) > 0; {
		n := min(len(body), int(gomilter.DataSize64K))
		chunk := body[:n]
		body = body[n:]
		steps = append(steps, func() (*gomilter.Action, error) { return sess.BodyChunk(chunk) })
	}
	for _, step := range steps {
		act, err := step()
		if err != nil {
			return err
		}
		if act.Type != gomilter.ActionContinue {
			return fmt.Errorf("milter stopped the message early: %s", act)
		}
	}
	_, act, err := sess.End()
	if err != nil {
		return err
	}
	if act.Type != gomilter.ActionAccept && act.Type != gomilter.ActionContinue {
		return fmt.Errorf("clean message not accepted: %s", act)
	}
	return nil
}

type message struct {
	headers [][2]string
	body    []byte
}

// generator makes unique messages of one size: clamd caches verdicts by
// content, and real mail is never twice the same.
type generator struct {
	kind string
	size int
	n    atomic.Int64
	rest []byte // the body after its unique first line
}

func newGenerator(size int) *generator {
	g := &generator{size: size, kind: "text"}
	raw := make([]byte, size)
	_, _ = rand.Read(raw)
	if size < 1<<20 {
		g.rest = wrap([]byte(base64.StdEncoding.EncodeToString(raw)[:size]))
		return g
	}
	// An attachment: its first 57 bytes (one base64 line) vary per message.
	g.kind = "attachment"
	g.rest = append(wrap([]byte(base64.StdEncoding.EncodeToString(raw[57:]))), "--b1--\r\n"...)
	return g
}

// wrap breaks text into 76-character CRLF lines, as mail is.
func wrap(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		n := min(len(b), 76)
		out = append(append(out, b[:n]...), '\r', '\n')
		b = b[n:]
	}
	return out
}

func (g *generator) next() message {
	id := g.n.Add(1)
	unique := fmt.Sprintf("%d-%d", time.Now().UnixNano(), id)
	h := [][2]string{
		{"Received", "from client.example.org (client.example.org [192.0.2.1]) by mx.example.net"},
		{"From", "Sender <sender@example.org>"},
		{"To", "user@example.net"},
		{"Subject", "benchmark " + unique},
		{"Message-ID", "<" + unique + "@example.org>"},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"MIME-Version", "1.0"},
	}
	if g.kind == "text" {
		h = append(h, [2]string{"Content-Type", "text/plain; charset=us-ascii"})
		body := append([]byte("Message "+unique+"\r\n"), g.rest...)
		return message{headers: h, body: body}
	}
	h = append(h, [2]string{"Content-Type", `multipart/mixed; boundary="b1"`})
	first := make([]byte, 57)
	copy(first, unique)
	body := []byte("--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n" +
		base64.StdEncoding.EncodeToString(first) + "\r\n")
	return message{headers: h, body: append(body, g.rest...)}
}

func report(o options, size int, kind string, sides []*side) bool {
	a, b := sides[0], sides[1]
	fmt.Printf("\n%s mail, %d bytes of %s, concurrency %d, %d rounds x %s\n", label(size), size, kind, o.concurrency, o.rounds, o.duration)
	// b (clamav-milter) is the baseline a is measured against.
	benchenv.Print(os.Stdout, "msg", []*benchenv.Side{&b.Side, &a.Side},
		benchenv.Column{Name: "milter CPU ms/msg", Values: []float64{perMsg(b.cpu, b.Count), perMsg(a.cpu, a.Count)}},
		benchenv.Column{Name: "clamd CPU ms/msg", Values: []float64{perMsg(b.clamd, b.Count), perMsg(a.clamd, a.Count)}})
	if a.Count == 0 || b.Count == 0 {
		return false
	}
	r := benchenv.Compare(&a.Side, &b.Side)
	fmt.Printf("RESULT size=%d kind=%s concurrency=%d ratio=%.3f ratio_min=%.3f ratio_max=%.3f a_rps=%.1f b_rps=%.1f a_p50_ms=%.2f b_p50_ms=%.2f a_p99_ms=%.2f b_p99_ms=%.2f a_errors=%d b_errors=%d a_cpu_ms=%.2f b_cpu_ms=%.2f a_clamd_cpu_ms=%.2f b_clamd_cpu_ms=%.2f\n",
		size, kind, o.concurrency, r.Value, r.Min, r.Max, a.Rate(), b.Rate(),
		benchenv.Ms(a.Pct(50)), benchenv.Ms(b.Pct(50)), benchenv.Ms(a.Pct(99)), benchenv.Ms(b.Pct(99)), a.Errors, b.Errors,
		perMsg(a.cpu, a.Count), perMsg(b.cpu, b.Count), perMsg(a.clamd, a.Count), perMsg(b.clamd, b.Count))
	return a.FirstErr == "" && b.FirstErr == ""
}

func label(size int) string {
	if size >= 1<<20 {
		return fmt.Sprintf("%d MiB", size>>20)
	}
	return fmt.Sprintf("%d KiB", size>>10)
}

// perMsg is CPU milliseconds per message; NaN without a process id.
func perMsg(d time.Duration, n int) float64 {
	if d == 0 || n == 0 {
		return math.NaN()
	}
	return benchenv.Ms(d) / float64(n)
}
