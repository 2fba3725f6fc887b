package scan

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// activeWindow is how long a client counts as present after its last job,
// and how long short work counts as present after the last short job:
// mail arrives in bursts with gaps, and the bulk cap must not lift in every
// gap only to take a slot the next mail then waits for.
const activeWindow = 5 * time.Second

// Defaults of the bulk classification.
const (
	// DefaultBulkSize is the size from which a job counts as bulk. clamd
	// scans random data at a few MiB/s per core with a real database, so a
	// job of this size holds a core for a noticeable fraction of a second:
	// far more than a mail's 20 KiB.
	DefaultBulkSize = 1 << 20
	// DefaultBulkAge is how long a job must have run to count as bulk
	// whatever its size: an archive of a few KiB can unpack to gigabytes,
	// and a job of unknown size is judged by its age alone.
	DefaultBulkAge = 2 * time.Second
)

// unknownCost stands for a job whose size is not known (a descriptor that
// cannot be fstat'ed): the round robin charges it one bulk job.
const unknownCost int64 = -1

// scheduler shares clamd's slots between clients by cost, not by job
// count: deficit round robin over the clients with waiting jobs, each
// client's quantum being its weight in bytes. A client with many small
// jobs and one with a few huge ones then get the engine in proportion to
// their weights, counted in bytes scanned, which is what costs clamd CPU.
//
// Slots are clamd threads, not cores: on top of the round robin, jobs
// classified bulk (large, or running for long) may hold at most bulkCap
// slots while short work is present, so that a short job always finds a
// core instead of sharing one with the whole flood. With no short work
// present the cap rises by one: a lone flood gets a slot per core
// (bulkLimit).
type scheduler struct {
	mu       sync.Mutex
	capacity int // 0 = unlimited
	reserve  int
	bulkCap  int // bulk jobs at once while short work is present; 0 = no cap
	bulkSize int64
	bulkAge  time.Duration
	quantum  int64 // bytes per unit of weight per round
	known    map[string]ClientLimits
	clients  []*client // in order of first sight: the round robin's ring
	byName   map[string]*client
	turn     int // index in clients where the next round starts
	running  map[*ticket]struct{}
	short    time.Time // when short work was last seen
	notify   func(client string, jobs int, bytes int64)
	now      func() time.Time
	retry    *time.Timer // armed while jobs wait beside free slots
}

type client struct {
	name    string
	lim     ClientLimits
	running int
	waiting []*ticket
	queued  int64 // bytes of the waiting jobs
	deficit int64 // bytes the round robin owes the client
	seen    time.Time
}

// ticket is one job's place in the scheduler, from its arrival to the end
// of its scan.
type ticket struct {
	c       *client
	cost    int64 // bytes; unknownCost when not known
	bulk    bool  // classified bulk by its size at admission (an unknown size is not)
	ch      chan struct{}
	granted bool
	started time.Time
}

func newScheduler(o Options, notify func(string, int, int64)) *scheduler {
	s := &scheduler{capacity: o.Capacity, reserve: o.Reserve, bulkCap: o.BulkCap, bulkSize: o.BulkSize,
		bulkAge: o.BulkAge, known: o.Limits, byName: map[string]*client{}, running: map[*ticket]struct{}{},
		notify: notify, now: time.Now}
	if s.capacity > 0 && s.reserve >= s.capacity {
		s.reserve = s.capacity - 1
	}
	if s.bulkSize <= 0 {
		s.bulkSize = DefaultBulkSize
	}
	if s.bulkAge <= 0 {
		s.bulkAge = DefaultBulkAge
	}
	s.quantum = s.bulkSize
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

// acquire waits for a slot for one of name's jobs, of cost bytes
// (unknownCost if not known), which arrived at since. The ticket is
// released when the scan ends; on error the job holds nothing, and
// queued tells whether it had been waiting.
func (s *scheduler) acquire(ctx context.Context, name string, cost int64, since time.Time) (t *ticket, queued bool, err error) {
	s.mu.Lock()
	now := s.now()
	c := s.client(name)
	c.seen = now
	t = &ticket{c: c, cost: cost, bulk: cost >= s.bulkSize, ch: make(chan struct{})}
	if !t.bulk {
		s.short = now
	}
	if len(c.waiting) == 0 && s.canStart(t, now) {
		s.start(t, now)
		s.mu.Unlock()
		return t, false, nil
	}
	if err := s.admitQueue(c, t); err != nil {
		s.mu.Unlock()
		return nil, false, err
	}
	c.waiting = append(c.waiting, t)
	c.queued += max(cost, 0)
	jobs, bytes, maxWait := len(c.waiting), c.queued, c.lim.MaxWait // lim changes on reconfigure
	s.mu.Unlock()
	s.notify(name, jobs, bytes)

	timer := time.NewTimer(maxWait - time.Since(since))
	defer timer.Stop()
	select {
	case <-t.ch:
		return t, true, nil
	case <-timer.C:
		if s.abandon(t) {
			return t, true, nil
		}
		return nil, true, &BusyError{Reason: fmt.Sprintf("no free engine slot within %s (policy.%s.max_wait)", maxWait, name)}
	case <-ctx.Done():
		if s.abandon(t) {
			s.release(t) // granted meanwhile: give the slot straight back
		}
		return nil, true, context.Cause(ctx)
	}
}

// admitQueue refuses a job the client's queue has no room for. A job
// larger than max_queue_bytes on its own still queues when nothing else
// does, or it could never run under contention.
func (s *scheduler) admitQueue(c *client, t *ticket) error {
	if len(c.waiting) >= c.lim.MaxQueue {
		return &BusyError{Reason: fmt.Sprintf("%d jobs already waiting for the engine (policy.%s.max_queue = %d)",
			len(c.waiting), c.name, c.lim.MaxQueue)}
	}
	if m := c.lim.MaxQueueBytes; m > 0 && c.queued > 0 && c.queued+max(t.cost, 0) > m {
		return &BusyError{Reason: fmt.Sprintf("%d bytes already waiting for the engine, %d more do not fit (policy.%s.max_queue_bytes = %d)",
			c.queued, max(t.cost, 0), c.name, m)}
	}
	return nil
}

// abandon takes t out of its queue; true when it was granted meanwhile
// (the caller then owns a slot).
func (s *scheduler) abandon(t *ticket) bool {
	s.mu.Lock()
	if t.granted {
		s.mu.Unlock()
		return true
	}
	c := t.c
	c.waiting = slices.DeleteFunc(c.waiting, func(x *ticket) bool { return x == t })
	c.queued -= max(t.cost, 0)
	if len(c.waiting) == 0 {
		c.deficit = 0
	}
	jobs, bytes := len(c.waiting), c.queued
	// A job that leaves may unblock others (the bulk cap counts waiting
	// short jobs), so the slots are handed out again.
	granted := s.dispatch(s.now())
	s.mu.Unlock()
	s.notify(c.name, jobs, bytes)
	s.tell(granted)
	return false
}

func (s *scheduler) release(t *ticket) {
	s.mu.Lock()
	now := s.now()
	delete(s.running, t)
	t.c.running--
	t.c.seen = now
	if !t.bulk && now.Sub(t.started) < s.bulkAge {
		s.short = now
	}
	granted := s.dispatch(now)
	s.mu.Unlock()
	s.tell(granted)
}

// note is a client's queue after a change, taken under the lock and told
// to the observers outside it.
type note struct {
	client string
	jobs   int
	bytes  int64
}

func (s *scheduler) tell(notes []note) {
	for _, n := range notes {
		s.notify(n.client, n.jobs, n.bytes)
	}
}

// dispatch hands free slots to waiting jobs by deficit round robin and
// returns the jobs it started. The client whose turn it is goes on while
// its deficit covers its next job. Then, instead of visiting the ring
// quantum by quantum, dispatch computes how many rounds each eligible
// client needs before its next job fits its deficit, lets that many
// rounds pass at once, and gives the turn to the client that needs fewest
// (ties: ring order after the turn). Only eligible clients earn credit: one
// held back by its own limits or the bulk cap does not bank a burst for
// later.
func (s *scheduler) dispatch(now time.Time) []note {
	var out []note
	for s.capacity == 0 || len(s.running) < s.capacity {
		c := s.pick(now)
		if c == nil {
			s.retryLater()
			return out
		}
		t := c.waiting[0]
		c.waiting = c.waiting[1:]
		c.queued -= max(t.cost, 0)
		c.deficit -= s.charge(t)
		if len(c.waiting) == 0 {
			c.deficit = 0
		}
		t.granted = true
		s.start(t, now)
		close(t.ch)
		out = append(out, note{c.name, len(c.waiting), c.queued})
	}
	return out
}

// pick chooses the client whose waiting job starts next, or nil.
func (s *scheduler) pick(now time.Time) *client {
	n := len(s.clients)
	if n == 0 {
		return nil
	}
	eligible := func(c *client) bool { return len(c.waiting) > 0 && s.canStart(c.waiting[0], now) }
	if c := s.clients[s.turn]; eligible(c) && s.rounds(c) == 0 {
		return c
	}
	pick, rounds := -1, int64(0)
	for i := 1; i <= n; i++ {
		idx := (s.turn + i) % n
		c := s.clients[idx]
		if !eligible(c) {
			continue
		}
		if r := s.rounds(c); pick < 0 || r < rounds {
			pick, rounds = idx, r
		}
	}
	if pick < 0 {
		return nil
	}
	for _, c := range s.clients {
		if rounds > 0 && eligible(c) {
			c.deficit += rounds * s.quantum * int64(c.lim.Weight)
		}
	}
	s.turn = pick
	return s.clients[pick]
}

// retryEvery is how soon jobs held back beside free slots are looked at
// again: what held them (short work present, a job's age) changes with
// time alone, with no job ending to trigger a dispatch.
const retryEvery = 250 * time.Millisecond

func (s *scheduler) retryLater() {
	if s.retry != nil || (s.capacity > 0 && len(s.running) >= s.capacity) {
		return
	}
	for _, c := range s.clients {
		if len(c.waiting) > 0 {
			s.retry = time.AfterFunc(retryEvery, func() {
				s.mu.Lock()
				s.retry = nil
				granted := s.dispatch(s.now())
				s.mu.Unlock()
				s.tell(granted)
			})
			return
		}
	}
}

// rounds is how many quanta c still needs for its first waiting job.
func (s *scheduler) rounds(c *client) int64 {
	need := s.charge(c.waiting[0]) - c.deficit
	if need <= 0 {
		return 0
	}
	q := s.quantum * int64(c.lim.Weight)
	return (need + q - 1) / q
}

// charge is what a job costs its client in the round robin.
func (s *scheduler) charge(t *ticket) int64 {
	if t.cost == unknownCost {
		return s.bulkSize
	}
	return max(t.cost, 1)
}

func (s *scheduler) start(t *ticket, now time.Time) {
	t.started = now
	t.c.running++
	s.running[t] = struct{}{}
}

// canStart reports whether t may start now.
func (s *scheduler) canStart(t *ticket, now time.Time) bool {
	c := t.c
	if c.lim.Concurrent > 0 && c.running >= c.lim.Concurrent {
		return false
	}
	if s.capacity == 0 {
		return true
	}
	if len(s.running) >= s.capacity {
		return false
	}
	if t.bulk && s.bulkCap > 0 && s.bulkRunning(now) >= s.bulkLimit(now) {
		return false
	}
	return c.running < s.capacity-s.reserve || !s.othersPresent(c, now)
}

// bulkLimit is how many bulk jobs may run now: bulkCap while short work
// is present; with none, one more, the core kept for short work. Never
// more: on a few cores, more bulk scans at once only share the same CPU,
// and the first short job after a lull would find every slot held by a
// flood whose scans each take that many times longer to end.
func (s *scheduler) bulkLimit(now time.Time) int {
	if s.shortPresent(now) {
		return s.bulkCap
	}
	return s.bulkCap + 1
}

// bulkRunning counts the running jobs that are bulk by size or by age.
func (s *scheduler) bulkRunning(now time.Time) int {
	n := 0
	for t := range s.running {
		if t.bulk || now.Sub(t.started) >= s.bulkAge {
			n++
		}
	}
	return n
}

// shortPresent reports short work waiting, running or recently seen.
func (s *scheduler) shortPresent(now time.Time) bool {
	if now.Sub(s.short) < activeWindow {
		return true
	}
	for _, c := range s.clients {
		for _, w := range c.waiting {
			if !w.bulk {
				return true
			}
		}
	}
	for t := range s.running {
		if !t.bulk && now.Sub(t.started) < s.bulkAge {
			return true
		}
	}
	return false
}

func (s *scheduler) othersPresent(c *client, now time.Time) bool {
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

// bulkNow reports whether t counts as bulk at the end of its scan.
func (s *scheduler) bulkNow(t *ticket) bool {
	return t.bulk || s.now().Sub(t.started) >= s.bulkAge
}
