package scan

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// activeWindow is how long a client counts as present after its last job:
// while another client is present, a client leaves the reserve free.
const activeWindow = 5 * time.Second

// bulkFactor is how much longer than another present client's a client's
// jobs must take, on average, for it to count as bulk.
const bulkFactor = 10

// scheduler shares clamd's slots between clients. Waiting jobs are served
// by weighted round robin over clients (each client in turn gets up to
// Weight slots), so a client with many queued jobs cannot starve one with
// few; and a client never takes the last Reserve slots while others are
// present, so a newcomer does not wait for a flood's long scans to end.
// Work is counted in jobs, not bytes: clamd's cost per job is not known
// when it is admitted.
type scheduler struct {
	mu       sync.Mutex
	capacity int // 0 = unlimited
	reserve  int
	running  int
	known    map[string]ClientLimits
	clients  []*client // in order of first sight: the round robin's ring
	byName   map[string]*client
	turn     int // index in clients of the one being served
	credit   int // slots left in its turn
	bulkCap  int // jobs a bulk client may run while others are present
	notify   func(client string, depth int)
}

type client struct {
	name    string
	lim     ClientLimits
	running int
	waiting []*waiter
	seen    time.Time
	avg     time.Duration // moving average of its jobs' durations
}

type waiter struct {
	ch      chan struct{}
	granted bool
}

func newScheduler(o Options, notify func(string, int)) *scheduler {
	s := &scheduler{capacity: o.Capacity, reserve: o.Reserve, known: o.Limits, byName: map[string]*client{}, notify: notify, bulkCap: o.BulkCap}
	if s.capacity > 0 && s.reserve >= s.capacity {
		s.reserve = s.capacity - 1
	}
	return s
}

func (s *scheduler) limits(name string) ClientLimits {
	l := s.known[name]
	if l.Weight <= 0 {
		l.Weight = 1
	}
	if l.MaxQueue <= 0 {
		l.MaxQueue = DefaultMaxQueue
	}
	if l.MaxWait <= 0 {
		l.MaxWait = DefaultMaxWait
	}
	return l
}

func (s *scheduler) client(name string) *client {
	c, ok := s.byName[name]
	if !ok {
		c = &client{name: name, lim: s.limits(name)}
		s.byName[name] = c
		s.clients = append(s.clients, c)
	}
	return c
}

// acquire waits for a slot for one of name's jobs, which arrived at since.
func (s *scheduler) acquire(ctx context.Context, name string, since time.Time) error {
	s.mu.Lock()
	c := s.client(name)
	c.seen = time.Now()
	if len(c.waiting) == 0 && s.canRun(c) {
		s.start(c)
		s.mu.Unlock()
		return nil
	}
	if len(c.waiting) >= c.lim.MaxQueue {
		s.mu.Unlock()
		return &BusyError{Reason: fmt.Sprintf("%d jobs already waiting for the engine (max_queue)", c.lim.MaxQueue)}
	}
	w := &waiter{ch: make(chan struct{})}
	c.waiting = append(c.waiting, w)
	depth, maxWait := len(c.waiting), c.lim.MaxWait // lim changes on reconfigure
	s.mu.Unlock()
	s.notify(name, depth)

	t := time.NewTimer(maxWait - time.Since(since))
	defer t.Stop()
	select {
	case <-w.ch:
		return nil
	case <-t.C:
		if s.abandon(c, w) {
			return nil
		}
		return &BusyError{Reason: fmt.Sprintf("no free engine slot within %s (max_wait)", maxWait)}
	case <-ctx.Done():
		if s.abandon(c, w) {
			return nil
		}
		return ctx.Err()
	}
}

// abandon takes w out of its queue; true when it was granted meanwhile
// (the caller then owns a slot).
func (s *scheduler) abandon(c *client, w *waiter) bool {
	s.mu.Lock()
	if w.granted {
		s.mu.Unlock()
		return true
	}
	c.waiting = slices.DeleteFunc(c.waiting, func(x *waiter) bool { return x == w })
	depth := len(c.waiting)
	s.mu.Unlock()
	s.notify(c.name, depth)
	return false
}

func (s *scheduler) release(name string, took time.Duration) {
	s.mu.Lock()
	c := s.byName[name]
	if c.avg == 0 {
		c.avg = took
	} else {
		c.avg = (4*c.avg + took) / 5
	}
	c.running--
	s.running--
	c.seen = time.Now()
	granted := s.dispatch()
	s.mu.Unlock()
	for _, g := range granted {
		s.notify(g.name, g.depth)
	}
}

type grant struct {
	name  string
	depth int
}

// dispatch hands free slots to waiting jobs, client by client in turn.
func (s *scheduler) dispatch() []grant {
	var out []grant
	for {
		c := s.next()
		if c == nil {
			return out
		}
		w := c.waiting[0]
		c.waiting = c.waiting[1:]
		w.granted = true
		s.start(c)
		close(w.ch)
		out = append(out, grant{c.name, len(c.waiting)})
	}
}

// next picks the client whose waiting job runs next: the current turn's,
// while it has credit, then the following ones in the ring.
func (s *scheduler) next() *client {
	if s.capacity > 0 && s.running >= s.capacity {
		return nil // keep the turn: its credit is for the next free slot
	}
	for range len(s.clients) + 1 {
		c := s.clients[s.turn]
		if s.credit > 0 && len(c.waiting) > 0 && s.canRun(c) {
			s.credit--
			return c
		}
		s.turn = (s.turn + 1) % len(s.clients)
		s.credit = s.clients[s.turn].lim.Weight
	}
	return nil
}

func (s *scheduler) start(c *client) {
	c.running++
	s.running++
}

// canRun reports whether one more of c's jobs may start now.
func (s *scheduler) canRun(c *client) bool {
	if c.lim.Concurrent > 0 && c.running >= c.lim.Concurrent {
		return false
	}
	if s.capacity == 0 {
		return true
	}
	if s.running >= s.capacity {
		return false
	}
	if s.bulkCap > 0 && c.running >= s.bulkCap && s.bulk(c) {
		return false
	}
	return c.running < s.capacity-s.reserve || !s.othersPresent(c)
}

// bulk reports whether c's jobs take far longer than those of another
// client present: slots are shared fairly, but clamd's CPU is not, and a
// few long scans are enough to take every core from short ones. While such
// a neighbour is present, a bulk client runs at most bulkCap jobs.
func (s *scheduler) bulk(c *client) bool {
	now := time.Now()
	for _, o := range s.clients {
		if o != c && o.present(now) && o.avg > 0 && c.avg > bulkFactor*o.avg {
			return true
		}
	}
	return false
}

func (s *scheduler) othersPresent(c *client) bool {
	now := time.Now()
	for _, o := range s.clients {
		if o != c && o.present(now) {
			return true
		}
	}
	return false
}

func (c *client) present(now time.Time) bool {
	return c.running > 0 || len(c.waiting) > 0 || now.Sub(c.seen) < activeWindow
}
