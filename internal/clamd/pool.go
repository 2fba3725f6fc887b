package clamd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Pool spreads jobs over one or more clamd backends that load the same
// database, and uses a fallback only while every primary is down. Each
// backend is health-checked with PING: a backend is taken out only by its
// health checks (at once when it refuses connections, after
// failuresToDown checks in a row when it does not answer in time), and put
// back when it answers. A job's failure never takes a backend out: a scan
// that exceeds its timeout on an overloaded engine fails that scan only
// (issue 16: slow scans timing out made /readyz flap); a job that cannot
// connect makes the check run at once. A job that fails is never retried
// as a stream (its bytes are gone) and never turned into a verdict: the
// client gets the error.
type Pool struct {
	members  []*member // primaries, then the fallback if any
	log      *slog.Logger
	interval time.Duration
	next     atomic.Uint32
	kick     chan struct{} // a job could not connect: check now

	// DownWait bounds the jobs of an outage: once every backend has been
	// taken out, one for not answering (a hung engine, not a gone one), jobs
	// wait at most this long for one to answer again (see Serving); 0 =
	// no bound but each job's timeout. Set before Run.
	DownWait time.Duration
	out      outage
}

// outage is what the jobs of a hung pool wait on; only the checker
// changes it, under mu.
type outage struct {
	mu     sync.Mutex
	serve  context.Context // ends DownWait after every backend hung
	end    context.CancelCauseFunc
	timer  *time.Timer   // ends serve; nil outside an outage
	back   chan struct{} // closed when a backend answers again
	hungAt time.Time
}

// failuresToDown is how many health checks in a row must time out before a
// backend that still accepts connections is taken out: one slow answer on
// a loaded machine is not a dead engine.
const failuresToDown = 3

type member struct {
	c        *Client
	fallback bool
	up       atomic.Bool
	hung     atomic.Bool // taken out for not answering, not for refusing
	answered atomic.Bool // it has answered once: failing before that is starting up
	failures int         // checks failed in a row; only the checker goroutine touches it
	mu       sync.Mutex
	lastErr  string
}

// State is one backend as the health checks see it.
type State struct {
	Address  string
	Fallback bool
	Up       bool
	LastErr  string
}

// NewPool builds a pool of primaries and an optional fallback ("" = none).
// Backends start as up: the first job or check corrects that.
//
// tlsDial, when given, connects to the tls: backends (internal/tlsid).
func NewPool(primaries []string, fallback string, timeout, interval time.Duration, log *slog.Logger, tlsDial ...DialFunc) (*Pool, error) {
	p := &Pool{log: log, interval: interval, kick: make(chan struct{}, 1)}
	p.out.serve, p.out.end = context.WithCancelCause(context.Background())
	add := func(addr string, fb bool) error {
		c, err := New(addr, timeout)
		if len(tlsDial) > 0 && tlsDial[0] != nil {
			c, err = NewTLS(addr, timeout, tlsDial[0])
		}
		if err != nil {
			return err
		}
		c.PassStreams = true
		m := &member{c: c, fallback: fb}
		m.up.Store(true)
		p.members = append(p.members, m)
		return nil
	}
	for _, a := range primaries {
		if err := add(a, false); err != nil {
			return nil, err
		}
	}
	if fallback != "" {
		if err := add(fallback, true); err != nil {
			return nil, err
		}
	}
	if len(primaries) == 0 {
		return nil, errors.New("no backend")
	}
	return p, nil
}

// Primary is the first backend, for callers that need one address.
func (p *Pool) Primary() *Client { return p.members[0].c }

// Unix reports whether some backend can take descriptors (FILDES).
func (p *Pool) Unix() bool {
	for _, m := range p.members {
		if m.c.Network == "unix" {
			return true
		}
	}
	return false
}

// States reports every backend, for metrics and readiness.
func (p *Pool) States() []State {
	out := make([]State, len(p.members))
	for i, m := range p.members {
		m.mu.Lock()
		out[i] = State{Address: m.c.String(), Fallback: m.fallback, Up: m.up.Load(), LastErr: m.lastErr}
		m.mu.Unlock()
	}
	return out
}

// Ready reports whether a backend answers.
func (p *Pool) Ready() error {
	for _, m := range p.members {
		if m.up.Load() {
			return nil
		}
	}
	return errors.New("no clamd backend answers")
}

// Run checks every backend each interval until ctx ends.
func (p *Pool) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		for _, m := range p.members {
			p.check(ctx, m)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

func (p *Pool) check(ctx context.Context, m *member) {
	ctx, cancel := context.WithTimeout(ctx, max(p.interval, 2*time.Second))
	defer cancel()
	reply, err := m.c.Command(ctx, "PING")
	if err == nil && reply != "PONG" {
		err = fmt.Errorf("PING answered %q", reply)
	}
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return // shutting down
	}
	if err == nil || refused(err) {
		m.failures = 0
		p.mark(m, err)
		return
	}
	m.failures++
	if m.failures >= failuresToDown || !m.answered.Load() {
		p.mark(m, err)
		return
	}
	p.log.Warn("clamd backend slow to answer PING", "backend", m.c.String(), "failures", m.failures, "err", err)
}

// refused reports an engine that is not there: nothing listens on its
// socket. A timeout or a dropped answer may be a busy engine.
func refused(err error) bool {
	var dial *DialError
	return errors.As(err, &dial)
}

// mark records a backend's health and logs each change.
func (p *Pool) mark(m *member, err error) {
	up := err == nil
	m.hung.Store(err != nil && !refused(err))
	defer p.followOutage()
	m.mu.Lock()
	if err != nil {
		m.lastErr = err.Error()
	}
	m.mu.Unlock()
	if up && !m.answered.Swap(true) {
		m.up.Store(true)
		return
	}
	if m.up.Swap(up) == up {
		return
	}
	if !m.answered.Load() {
		p.log.Debug("clamd backend not answering yet", "backend", m.c.String(), "err", err)
		return
	}
	if up {
		p.log.Info("clamd backend is back", "backend", m.c.String(), "fallback", m.fallback)
	} else {
		p.log.Error("clamd backend is down: taken out", "backend", m.c.String(), "fallback", m.fallback, "err", err)
	}
}

// pick chooses an up primary in turn, else the fallback if up, else (all
// down: the checks may lag) the first backend that can do the job.
func (p *Pool) pick(needUnix bool) (*member, error) {
	n := len(p.members)
	start := int(p.next.Add(1))
	for _, fallback := range []bool{false, true} {
		for i := range n {
			m := p.members[(start+i)%n]
			if m.fallback == fallback && m.up.Load() && (!needUnix || m.c.Network == "unix") {
				return m, nil
			}
		}
	}
	for _, m := range p.members {
		if !needUnix || m.c.Network == "unix" {
			return m, nil
		}
	}
	return nil, &UnavailableError{errors.New("FILDES needs a unix socket backend, none is configured")}
}

// result has the backend checked at once when the job could not connect
// to it; only the check takes it out.
func (p *Pool) result(_ *member, reply string, err error) (string, error) {
	if refused(err) {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return reply, err
}

func (p *Pool) Instream(ctx context.Context, r io.Reader) (string, error) {
	m, err := p.pick(false)
	if err != nil {
		return "", err
	}
	reply, err := m.c.Instream(ctx, r)
	return p.result(m, reply, err)
}

// Fildes hands f to a local clamd, or streams it to a backend that takes
// no descriptors (another clamgate over TLS: the file was opened here,
// beneath this gateway's roots, and only its bytes travel).
func (p *Pool) Fildes(ctx context.Context, f *os.File) (string, error) {
	m, err := p.pick(p.Unix())
	if err != nil {
		return "", err
	}
	var reply string
	if m.c.Network == "unix" {
		reply, err = m.c.Fildes(ctx, f)
	} else {
		reply, err = m.c.FileAsStream(ctx, f)
	}
	return p.result(m, reply, err)
}

// Command is retried once on another backend: unlike a stream, a command
// can be sent again.
func (p *Pool) Command(ctx context.Context, name string) (string, error) {
	m, err := p.pick(false)
	if err != nil {
		return "", err
	}
	reply, err := m.c.Command(ctx, name)
	reply, err = p.result(m, reply, err)
	var ue *UnavailableError
	if errors.As(err, &ue) && len(p.members) > 1 && ctx.Err() == nil {
		if m2, err2 := p.pick(false); err2 == nil && m2 != m {
			reply, err = m2.c.Command(ctx, name)
			return p.result(m2, reply, err)
		}
	}
	return reply, err
}

// Clients are every backend, for what must reach each of them: a reload.
func (p *Pool) Clients() []*Client {
	out := make([]*Client, len(p.members))
	for i, m := range p.members {
		out[i] = m.c
	}
	return out
}
