package scan

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"clamgate/internal/hangup"
	"golang.org/x/sys/unix"
)

// gateBackend holds every stream until the test lets it through, and
// counts how many run at once: the scheduler's decisions are all these
// tests look at.
type gateBackend struct {
	release chan struct{}
	mail    chan struct{} // releases only jobs whose data is "mail"
	running atomic.Int32
	peak    atomic.Int32
	order   chan string
}

func newGateBackend() *gateBackend {
	return &gateBackend{release: make(chan struct{}, 1000), mail: make(chan struct{}, 1000), order: make(chan string, 1000)}
}

func (b *gateBackend) Instream(ctx context.Context, r io.Reader) (string, error) {
	data, _ := io.ReadAll(r)
	data = bytes.TrimRight(data, ".")
	n := b.running.Add(1)
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	b.order <- string(data)
	defer b.running.Add(-1)
	mail := b.mail
	if string(data) != "mail" {
		mail = nil
	}
	select {
	case <-mail:
		return "stream: OK", nil
	case <-b.release:
		return "stream: OK", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
func (b *gateBackend) Fildes(context.Context, *os.File) (string, error) { return "", nil }
func (b *gateBackend) Command(context.Context, string) (string, error)  { return "PONG", nil }

func submit(d *Dispatcher, wg *sync.WaitGroup, client string, errs chan<- error) {
	submitSized(d, wg, client, 0, errs)
}

// submitSized submits a stream of size bytes (at least the client's name,
// which the backend reports), padded with dots.
func submitSized(d *Dispatcher, wg *sync.WaitGroup, client string, size int, errs chan<- error) {
	data := client + strings.Repeat(".", max(size-len(client), 0))
	wg.Go(func() {
		_, err := d.Do(context.Background(), Job{Client: client, Kind: Stream, Data: strings.NewReader(data)})
		if errs != nil && err != nil {
			errs <- err
		}
	})
}

// waitRunning lets every goroutine of the test's bubble settle (each job
// blocked in the backend, in a queue or on a timer) and checks how many
// jobs run: the scheduler has made every decision it can.
func waitRunning(t *testing.T, b *gateBackend, n int32) {
	t.Helper()
	synctest.Wait()
	if got := b.running.Load(); got != n {
		t.Fatalf("%d running, want %d", got, n)
	}
}

// queueWatch records each client's deepest queue. While no slot frees,
// a depth reached means that many jobs are queued, in whatever order the
// dispatcher's notifications arrive.
type queueWatch struct {
	mu      sync.Mutex
	deepest map[string]int
}

func (q *queueWatch) Done(Job, Outcome) {}

func (q *queueWatch) Queue(client string, depth int, _ int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deepest[client] = max(q.deepest[client], depth)
}

func (q *queueWatch) wait(t *testing.T, client string, depth int) {
	t.Helper()
	synctest.Wait()
	q.mu.Lock()
	defer q.mu.Unlock()
	if got := q.deepest[client]; got < depth {
		t.Fatalf("%s: %d jobs queued, want %d", client, got, depth)
	}
}

// TestAloneGetsAll: a client alone uses every slot, reserve included.
func TestAloneGetsAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newGateBackend()
		d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 4, Reserve: 1})
		var wg sync.WaitGroup
		for range 6 {
			submit(d, &wg, "proxy", nil)
		}
		waitRunning(t, b, 4)
		for range 6 {
			b.release <- struct{}{}
		}
		wg.Wait()
		if b.peak.Load() != 4 {
			t.Fatalf("peak %d, want 4", b.peak.Load())
		}
	})
}

// TestReserveLetsNewcomerIn: while a flood holds all but the reserve, a
// mail job starts at once.
func TestReserveLetsNewcomerIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newGateBackend()
		d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 4, Reserve: 1})
		var wg sync.WaitGroup
		submit(d, &wg, "mail", nil) // mail is present...
		waitRunning(t, b, 1)
		<-b.order
		b.release <- struct{}{}
		waitRunning(t, b, 0)
		for range 10 {
			submit(d, &wg, "proxy", nil) // ...so the flood leaves one slot
		}
		waitRunning(t, b, 3)
		for range 3 {
			<-b.order
		}
		submit(d, &wg, "mail", nil)
		waitRunning(t, b, 4)
		if got := <-b.order; got != "mail" {
			t.Fatalf("4th running job is %q, want mail", got)
		}
		for range 11 {
			b.release <- struct{}{}
		}
		wg.Wait()
	})
}

// TestWeightsHoldByBytes: under contention the engine is shared by bytes,
// in proportion to the weights, whatever the clients' job sizes: "big"
// (weight 1) sends jobs three times the size of "small"'s (weight 2).
func TestWeightsHoldByBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newGateBackend()
		q := &queueWatch{deepest: map[string]int{}}
		d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 1, BulkSize: 1000,
			Limits:    map[string]ClientLimits{"small": {Weight: 2}},
			Observers: []Observer{q}})
		var wg sync.WaitGroup
		submit(d, &wg, "first", nil)
		waitRunning(t, b, 1)
		<-b.order
		for range 20 {
			submitSized(d, &wg, "big", 3000, nil)
			submitSized(d, &wg, "small", 1000, nil)
			submitSized(d, &wg, "small", 1000, nil)
		}
		q.wait(t, "big", 20)
		q.wait(t, "small", 40)
		got := map[string]int{}
		for range 28 {
			b.release <- struct{}{}
			got[<-b.order]++
		}
		for range 33 {
			b.release <- struct{}{}
		}
		wg.Wait()
		bigBytes, smallBytes := 3000*got["big"], 1000*got["small"]
		// Exact up to the one job in flight at the end of the sample.
		if d := smallBytes - 2*bigBytes; d < -3000 || d > 3000 {
			t.Fatalf("bytes served: big %d, small %d; want small = 2 x big (jobs %v)", bigBytes, smallBytes, got)
		}
	})
}

// TestShortJobFindsSlotBesideFlood: while short work is present, bulk jobs
// hold at most BulkCap slots however many flood clients queue and however
// heavy their weight, so a short job starts at once.
func TestShortJobFindsSlotBesideFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, weight := range []int{1, 100} {
			b := newGateBackend()
			d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 4, BulkCap: 1, BulkSize: 1000,
				Limits: map[string]ClientLimits{"f1": {Weight: weight}, "f2": {Weight: weight}, "f3": {Weight: weight}}})
			var wg sync.WaitGroup
			submit(d, &wg, "mail", nil) // short work is present
			<-b.order
			b.release <- struct{}{}
			waitRunning(t, b, 0)
			for range 5 {
				for _, f := range []string{"f1", "f2", "f3"} {
					submitSized(d, &wg, f, 100000, nil)
				}
			}
			waitRunning(t, b, 1)
			<-b.order
			for range 3 {
				submit(d, &wg, "mail", nil)
				waitRunning(t, b, 2)
				if got := <-b.order; got != "mail" {
					t.Fatalf("weight %d: job started beside the bulk one is %q, want mail", weight, got)
				}
				b.mail <- struct{}{} // the flood's job keeps running
				waitRunning(t, b, 1)
			}
			for range 15 {
				b.release <- struct{}{}
			}
			wg.Wait()
		}
	})
}

// TestShortJobAfterLull: a lone flood holds BulkCap+1 slots, not every
// slot (more bulk scans than cores only share the same CPU), so a short job
// that arrives after a lull starts at once instead of waiting for one of
// the flood's scans to end; the flood then drops to BulkCap.
func TestShortJobAfterLull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newGateBackend()
		q := &queueWatch{deepest: map[string]int{}}
		d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 4, BulkCap: 1, BulkSize: 1000,
			Limits: map[string]ClientLimits{"flood": {Weight: 100}}, Observers: []Observer{q}})
		var wg sync.WaitGroup
		for range 10 {
			submitSized(d, &wg, "flood", 5000, nil)
		}
		waitRunning(t, b, 2)
		for range 2 {
			<-b.order
		}
		q.wait(t, "flood", 8)
		submit(d, &wg, "mail", nil)
		waitRunning(t, b, 3)
		if got := <-b.order; got != "mail" {
			t.Fatalf("job started beside the lone flood: %q, want mail", got)
		}
		b.mail <- struct{}{}
		b.release <- struct{}{} // one of the flood's scans ends: none replaces it while mail is present
		waitRunning(t, b, 1)
		for range 9 {
			b.release <- struct{}{}
		}
		wg.Wait()
	})
}

// TestBulkByAge: a job of unknown size is not bulk when it starts, and is
// once it has run for BulkAge: then it counts against the bulk cap.
func TestBulkByAge(t *testing.T) {
	s := newScheduler(Options{Capacity: 4, BulkCap: 1, BulkSize: 1000, BulkAge: time.Second}, func(string, int, int64) {})
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	if _, _, err := s.acquire(ctx, "mail", 10, now); err != nil { // short work present
		t.Fatal(err)
	}
	if _, _, err := s.acquire(ctx, "odd", unknownCost, now); err != nil {
		t.Fatal(err)
	}
	bulk := &ticket{c: s.client("flood"), cost: 5000, bulk: true}
	if !s.canStart(bulk, now) {
		t.Fatal("a young job of unknown size counted as bulk")
	}
	now = now.Add(2 * time.Second)
	s.short = now // mail still present
	if s.canStart(bulk, now) {
		t.Fatal("a job of unknown size running for 2s did not count as bulk")
	}
}

// TestBusy: beyond max_queue or max_queue_bytes a job is refused at once;
// beyond max_wait a queued one gives up. Neither ever gets a verdict, and
// each error names the limit and its policy key.
func TestBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newGateBackend()
		d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 1,
			Limits: map[string]ClientLimits{
				"proxy": {MaxQueue: 2, MaxWait: 300 * time.Millisecond},
				"big":   {MaxQueueBytes: 1500, MaxWait: 300 * time.Millisecond},
			}})
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for range 4 {
			submit(d, &wg, "proxy", errs)
		}
		var busy *BusyError
		select {
		case err := <-errs:
			if !errors.As(err, &busy) || !strings.Contains(err.Error(), "policy.proxy.max_queue = 2") {
				t.Fatalf("queue full: %v", err)
			}
		case <-time.After(time.Second):
			t.Fatal("4th job not refused at once")
		}
		for range 2 {
			if err := <-errs; !errors.As(err, &busy) || !strings.Contains(err.Error(), "policy.proxy.max_wait") {
				t.Fatalf("waited too long: %v", err)
			}
		}
		submitSized(d, &wg, "big", 1000, errs)
		submitSized(d, &wg, "big", 1000, errs)
		if err := <-errs; !errors.As(err, &busy) || !strings.Contains(err.Error(), "policy.big.max_queue_bytes = 1500") {
			t.Fatalf("queued bytes over max_queue_bytes: %v", err)
		}
		b.release <- struct{}{}
		b.release <- struct{}{}
		wg.Wait()
	})
}

// TestTrickleHoldsNoSlot: a stream still arriving holds no slot; another
// client's scan runs meanwhile in the only one.
func TestTrickleHoldsNoSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newGateBackend()
		d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 1})
		slow, feed := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := d.Do(context.Background(), Job{Client: "slow", Kind: Stream, Data: slow})
			done <- err
		}()
		feed.Write([]byte("slow"))
		var wg sync.WaitGroup
		submit(d, &wg, "other", nil)
		if got := <-b.order; got != "other" {
			t.Fatalf("ran %q while the slow stream trickled", got)
		}
		b.release <- struct{}{}
		wg.Wait()
		feed.Close()
		if got := <-b.order; got != "slow" {
			t.Fatalf("then ran %q", got)
		}
		b.release <- struct{}{}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// outcomes records each job's outcome.
type outcomes struct {
	mu  sync.Mutex
	all []Outcome
}

func (o *outcomes) Done(_ Job, out Outcome)  { o.mu.Lock(); o.all = append(o.all, out); o.mu.Unlock() }
func (o *outcomes) Queue(string, int, int64) {}
func (o *outcomes) abandoned() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var s []string
	for _, x := range o.all {
		if x.Abandoned != "" {
			s = append(s, x.Abandoned)
		}
	}
	return s
}

// TestClientGone: when the client's socket closes, its queued job leaves
// the queue at once and its running job is cancelled (its clamd
// connection closes with the context); both are counted as abandoned.
func TestClientGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newGateBackend()
		rec := &outcomes{}
		d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 1, Observers: []Observer{rec}})
		doGone := func(name string) (net.Conn, chan error) {
			a, c := socketPair(t)
			ctx, stop := hangup.With(context.Background(), a, false)
			t.Cleanup(stop)
			done := make(chan error, 1)
			go func() {
				_, err := d.Do(ctx, Job{Client: name, Kind: Stream, Data: strings.NewReader(name)})
				done <- err
			}()
			return c, done
		}
		runPeer, running := doGone("running")
		if got := <-b.order; got != "running" {
			t.Fatal(got)
		}
		queuedPeer, queued := doGone("queued")
		synctest.Wait() // the second job is queued behind the first
		queuedPeer.Close()
		if err := <-queued; !errors.Is(err, ErrClientGone) {
			t.Fatalf("queued job of a gone client: %v", err)
		}
		runPeer.Close()
		if err := <-running; !errors.Is(err, ErrClientGone) {
			t.Fatalf("running job of a gone client: %v", err)
		}
		if got := strings.Join(rec.abandoned(), " "); got != "queued running" {
			t.Fatalf("abandoned: %q", got)
		}
		time.Sleep(hangup.DefaultEvery) // the watcher ends with nothing in flight, and the bubble with it
	})
}

func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}
