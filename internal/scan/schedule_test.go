package scan

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateBackend holds every stream until the test lets it through, and
// counts how many run at once: the scheduler's decisions are all these
// tests look at.
type gateBackend struct {
	release chan struct{}
	running atomic.Int32
	peak    atomic.Int32
	order   chan string
}

func newGateBackend() *gateBackend {
	return &gateBackend{release: make(chan struct{}, 1000), order: make(chan string, 1000)}
}

func (b *gateBackend) Instream(ctx context.Context, r io.Reader) (string, error) {
	data, _ := io.ReadAll(r)
	n := b.running.Add(1)
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	b.order <- string(data)
	<-b.release
	b.running.Add(-1)
	return "stream: OK", nil
}
func (b *gateBackend) Fildes(context.Context, *os.File) (string, error) { return "", nil }
func (b *gateBackend) Command(context.Context, string) (string, error)  { return "PONG", nil }

func submit(d *Dispatcher, wg *sync.WaitGroup, client string, errs chan<- error) {
	wg.Go(func() {
		_, err := d.Do(context.Background(), Job{Client: client, Kind: Stream, Data: strings.NewReader(client)})
		if errs != nil && err != nil {
			errs <- err
		}
	})
}

func waitRunning(t *testing.T, b *gateBackend, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.running.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d running, want %d", b.running.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
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

func (q *queueWatch) Queue(client string, depth int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deepest[client] = max(q.deepest[client], depth)
}

func (q *queueWatch) wait(t *testing.T, client string, depth int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		got := q.deepest[client]
		q.mu.Unlock()
		if got >= depth {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d jobs queued, want %d", client, got, depth)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAloneGetsAll: a client alone uses every slot, reserve included.
func TestAloneGetsAll(t *testing.T) {
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
}

// TestReserveLetsNewcomerIn: while a flood holds all but the reserve, a
// mail job starts at once.
func TestReserveLetsNewcomerIn(t *testing.T) {
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
}

// TestRoundRobin: with both queues full, freed slots alternate between
// clients by weight, whoever queued first.
func TestRoundRobin(t *testing.T) {
	b := newGateBackend()
	q := &queueWatch{deepest: map[string]int{}}
	d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 1,
		Limits: map[string]ClientLimits{"mail": {Weight: 2}}, Observers: []Observer{q}})
	var wg sync.WaitGroup
	submit(d, &wg, "first", nil)
	waitRunning(t, b, 1)
	<-b.order
	for range 6 {
		submit(d, &wg, "proxy", nil)
	}
	q.wait(t, "proxy", 6)
	for range 4 {
		submit(d, &wg, "mail", nil)
	}
	q.wait(t, "mail", 4)
	var got []string
	for range 10 {
		b.release <- struct{}{}
		got = append(got, <-b.order)
	}
	b.release <- struct{}{}
	wg.Wait()
	want := "proxy mail mail proxy mail mail proxy proxy proxy proxy"
	if strings.Join(got, " ") != want {
		t.Fatalf("order %v\nwant  %s", got, want)
	}
}

// TestBusy: beyond max_queue a job is refused at once; beyond max_wait a
// queued one gives up. Neither ever gets a verdict.
func TestBusy(t *testing.T) {
	b := newGateBackend()
	d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 1,
		Limits: map[string]ClientLimits{"proxy": {MaxQueue: 2, MaxWait: 300 * time.Millisecond}}})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 4 {
		submit(d, &wg, "proxy", errs)
	}
	var busy *BusyError
	select {
	case err := <-errs:
		if !errors.As(err, &busy) || !strings.Contains(err.Error(), "max_queue") {
			t.Fatalf("queue full: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("4th job not refused at once")
	}
	for range 2 {
		if err := <-errs; !errors.As(err, &busy) || !strings.Contains(err.Error(), "max_wait") {
			t.Fatalf("waited too long: %v", err)
		}
	}
	b.release <- struct{}{}
	wg.Wait()
}

// TestBulkCap: once a client's scans take far longer than a present
// neighbour's, it runs at most BulkCap at once, leaving the cores to the
// short scans; alone again, it would get every slot (TestAloneGetsAll).
func TestBulkCap(t *testing.T) {
	b := newGateBackend()
	d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 4, BulkCap: 1})
	var wg sync.WaitGroup
	submit(d, &wg, "mail", nil) // a short scan
	<-b.order
	b.release <- struct{}{}
	wg.Wait()
	submit(d, &wg, "proxy", nil) // a long one
	<-b.order
	time.Sleep(100 * time.Millisecond)
	b.release <- struct{}{}
	wg.Wait()
	for range 4 {
		submit(d, &wg, "proxy", nil)
	}
	waitRunning(t, b, 1)
	time.Sleep(100 * time.Millisecond)
	if n := b.running.Load(); n != 1 {
		t.Fatalf("bulk client runs %d scans beside a short-scan client, want 1", n)
	}
	for range 4 {
		b.release <- struct{}{}
	}
	wg.Wait()
}
