package engine

import (
	"strings"
	"sync"
)

// activations follows the managed clamd's output for the moment a
// concurrent reload takes effect. RELOAD answers at once and clamd goes on
// scanning with the old database while it loads the new one; nothing it
// answers tells when it switches (STATS does not change, VERSION only
// when a .cvd's version does). Its log does: "Reading databases from" when
// a reload begins, "Activating the newly loaded database" just before its
// main thread, the one that hands every command to a worker with the
// engine of the moment, swaps engines. A command sent after that line was
// read is scanned with the new database.
type activations struct {
	mu      sync.Mutex
	waiters map[*activationWait]struct{}
}

type activationWait struct {
	began bool // a reload began after the wait was armed
	done  chan struct{}
}

const (
	reloadBegins   = "Reading databases from"
	reloadActivate = "Activating the newly loaded database"
)

// expect arms a wait for the next reload that begins from now on: arm it
// before sending RELOAD. A reload already under way when it was armed (a
// SelfCheck's, which clamd lets ignore the RELOAD) does not count: it may
// have read the directory before it settled. cancel disarms it.
func (a *activations) expect() (done <-chan struct{}, cancel func()) {
	w := &activationWait{done: make(chan struct{})}
	a.mu.Lock()
	if a.waiters == nil {
		a.waiters = map[*activationWait]struct{}{}
	}
	a.waiters[w] = struct{}{}
	a.mu.Unlock()
	return w.done, func() {
		a.mu.Lock()
		delete(a.waiters, w)
		a.mu.Unlock()
	}
}

// line reads one line of clamd's output.
func (a *activations) line(s string) {
	begins, activates := strings.Contains(s, reloadBegins), strings.Contains(s, reloadActivate)
	if !begins && !activates {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for w := range a.waiters {
		switch {
		case begins:
			w.began = true
		case w.began:
			close(w.done)
			delete(a.waiters, w)
		}
	}
}

// ExpectActivation arms a wait for the managed clamd to switch to the
// database of a reload that begins from now on (arm it before RELOAD);
// done is closed once it has. Under an engine unit clamd's output goes to
// the journal, not to the gateway: done is nil.
func (e *Engine) ExpectActivation() (done <-chan struct{}, cancel func()) {
	if e.unitDir != "" {
		return nil, func() {}
	}
	return e.acts.expect()
}
