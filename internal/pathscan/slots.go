package pathscan

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Slots bounds the directory descriptors all walks hold at once, so that
// clients walking deep trees on every connection cannot take the
// descriptors the gateway needs to accept and to reach clamd. The bound is
// a quarter of the process's descriptor limit: with max_walk_depth, each
// walk holds at most that many, and a walk that finds none free fails
// closed for the directory rather than wait (waiting while holding others
// could deadlock walks against each other). The zero value is ready; the
// fronts that walk share one.
type Slots struct {
	once  sync.Once
	limit int64
	held  atomic.Int64
}

func (s *Slots) acquire() bool {
	s.once.Do(func() {
		s.limit = 1024
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur != unix.RLIM_INFINITY {
			s.limit = max(int64(rl.Cur/4), 64)
		}
	})
	if s.held.Add(1) > s.limit {
		s.held.Add(-1)
		return false
	}
	return true
}

func (s *Slots) release() { s.held.Add(-1) }
