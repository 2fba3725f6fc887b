package scan

// Reconfigure applies a new configuration's capacity and client limits
// (weights, concurrency, queue and wait) to the jobs admitted from now on.
// Jobs running at clamd are not touched: they finish under the limits they
// were admitted with. Jobs still waiting are served under the new weights;
// each keeps the max_wait it was queued with. Observers are not changed.
func (d *Dispatcher) Reconfigure(o Options) {
	d.sched.tell(d.sched.reconfigure(o))
}

func (s *scheduler) reconfigure(o Options) []note {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capacity, s.reserve, s.bulkCap, s.known = o.Capacity, o.Reserve, o.BulkCap, o.Limits
	if s.capacity > 0 && s.reserve >= s.capacity {
		s.reserve = s.capacity - 1
	}
	if o.BulkSize > 0 {
		s.bulkSize, s.quantum = o.BulkSize, o.BulkSize
	}
	if o.BulkAge > 0 {
		s.bulkAge = o.BulkAge
	}
	for _, c := range s.clients {
		c.lim = s.limits(c.name)
	}
	// A larger capacity or concurrency may let waiting jobs start now.
	return s.dispatch(s.now())
}

// lockedLimits is limits for callers outside the scheduler's lock.
func (s *scheduler) lockedLimits(name string) ClientLimits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits(name)
}
