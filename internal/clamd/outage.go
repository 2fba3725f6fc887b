package clamd

import (
	"context"
	"fmt"
	"time"
)

// A hung clamd accepts connections and never answers: without a bound,
// every job sent to it, and every job queued behind those, waits for its
// own timeout (minutes). A gone clamd needs no such bound: a job that
// tries it fails at once, and the first one after its return succeeds.

// Serving returns the context a job runs under: it ends, with an
// *UnavailableError as its cause, DownWait after every backend was taken
// out, one of them for not answering. While they are out, Serving first
// waits up to DownWait (from the job's arrival) for one to answer again,
// having the checker look at once; then it fails the job.
func (p *Pool) Serving(ctx context.Context) (context.Context, error) {
	p.out.mu.Lock()
	serve, back, since := p.out.serve, p.out.back, p.out.hungAt
	p.out.mu.Unlock()
	if back == nil || p.DownWait <= 0 {
		return serve, nil
	}
	p.checkNow()
	t := time.NewTimer(p.DownWait)
	defer t.Stop()
	select {
	case <-back:
		p.out.mu.Lock()
		defer p.out.mu.Unlock()
		return p.out.serve, nil
	case <-t.C:
		return nil, p.downError(since)
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (p *Pool) downError(since time.Time) error {
	return &UnavailableError{fmt.Errorf("no clamd backend has answered for %s (backend.backend_down_wait %s)",
		time.Since(since).Round(time.Second), p.DownWait)}
}

// checkNow has the checker run at once, unless it is about to.
func (p *Pool) checkNow() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// followOutage starts an outage when no backend is up and one of them is
// hung (a job may be sent to it), and ends it when one answers again.
// Every backend merely gone is no outage: a job fails fast there, and the
// first one after a return succeeds.
func (p *Pool) followOutage() {
	up, hung := false, false
	for _, m := range p.members {
		up = up || m.up.Load()
		hung = hung || m.hung.Load()
	}
	hung = hung && !up
	o := &p.out
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case hung && o.back == nil:
		o.back, o.hungAt = make(chan struct{}), time.Now()
		if p.DownWait > 0 {
			end, since := o.end, o.hungAt
			o.timer = time.AfterFunc(p.DownWait, func() { end(p.downError(since)) })
		}
	case !hung && o.back != nil:
		close(o.back)
		o.back = nil
		if o.timer != nil && !o.timer.Stop() { // it fired: later jobs need a live context
			o.serve, o.end = context.WithCancelCause(context.Background())
		}
		o.timer = nil
	}
}
