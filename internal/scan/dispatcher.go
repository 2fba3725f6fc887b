package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"clamgate/internal/hangup"
)

// ClientLimits bound one client in the dispatcher.
type ClientLimits struct {
	Concurrent    int           // scans at once; 0 = no limit of its own
	Weight        int           // share of the engine under contention, in bytes; 0 = 1
	MaxQueue      int           // jobs waiting for the engine; 0 = DefaultMaxQueue
	MaxQueueBytes int64         // bytes of the jobs waiting for the engine (0 = no limit) and of the client's spool files (0 = half the spool budget)
	MaxWait       time.Duration // longest wait for the engine (queue, reload); 0 = DefaultMaxWait
	OnLimits      string        // LimitsBlock (""), LimitsError or LimitsPass
}

// Defaults of ClientLimits.
const (
	DefaultMaxWait  = 2 * time.Minute
	DefaultMaxQueue = 64
)

// Options configure a Dispatcher.
type Options struct {
	// Capacity is how many jobs run at clamd at once (clamd's MaxThreads);
	// 0 = no limit.
	Capacity int
	// Reserve is how many of them a client leaves free while other clients
	// are active, so that a newcomer starts at once instead of waiting for
	// a flood's scan to end.
	Reserve int
	// BulkCap is how many bulk jobs (BulkSize or larger, or running for
	// BulkAge) may run at once while short work is present; 0 = no such
	// cap. A little under the number of cores keeps one for the short
	// scans.
	BulkCap  int
	BulkSize int64         // 0 = DefaultBulkSize
	BulkAge  time.Duration // 0 = DefaultBulkAge
	// SpoolDir holds streams larger than SmallStream until they have been
	// scanned; "" = $TMPDIR.
	SpoolDir string
	// SpoolBudget bounds the bytes all spool files hold at once (see
	// SpoolBudget); 0 = no bound. Set at start only.
	SpoolBudget int64
	// Cache answers streams it has seen under the same database; nil = no
	// cache. The gateway pauses and resumes it around database changes.
	Cache     *VerdictCache
	Limits    map[string]ClientLimits
	Observers []Observer
}

// ErrClientGone is the cause of a job's cancellation when its client has
// disconnected: the job is dropped, queued or running, and counted as
// abandoned.
var ErrClientGone = hangup.ErrGone

// HeldError is a job that waited longer than its client's max_wait for a
// held engine (a managed clamd starting, a frugal reload): the client gets
// an error, never a verdict.
type HeldError struct{ Waited time.Duration }

func (e *HeldError) Error() string {
	return fmt.Sprintf("engine is starting or reloading its database: gave up after %s", e.Waited)
}

// BusyError is a job the gateway would not queue (the client's queue is
// full) or that waited longer than the client's max_wait for a free slot.
type BusyError struct{ Reason string }

func (e *BusyError) Error() string { return "gateway busy: " + e.Reason }

// IsBusy reports an error that means the gateway would not, or no longer
// could, wait for the engine: not a scan failure but a refusal.
func IsBusy(err error) bool {
	var busy *BusyError
	var held *HeldError
	return errors.As(err, &busy) || errors.As(err, &held)
}

// Dispatcher runs jobs against the backend: at most Capacity at once,
// shared between clients by weight, within each client's limits. It can be
// held while clamd reloads its database, so that new jobs wait in the
// gateway instead of piling up (or timing out) inside clamd.
type Dispatcher struct {
	backend   Backend
	log       *slog.Logger
	sched     *scheduler
	observers []Observer
	spoolDir  string
	budget    *SpoolBudget
	cache     *VerdictCache
	hangups   hangup.Watcher // the clients of the jobs in flight

	mu        sync.Mutex
	held      chan struct{} // non-nil while held; closed on the last release
	holds     int           // Holds not yet released
	heldSince time.Time
	active    int           // jobs admitted and not finished
	idle      chan struct{} // made by WaitIdle while active; closed at 0
}

// HeldFor is how long new jobs have been held so far; 0 when they are not.
func (d *Dispatcher) HeldFor() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held == nil {
		return 0
	}
	return time.Since(d.heldSince)
}

// NewDispatcher serves jobs on b.
func NewDispatcher(b Backend, log *slog.Logger, o Options) *Dispatcher {
	d := &Dispatcher{backend: b, log: log, observers: o.Observers, spoolDir: o.SpoolDir, cache: o.Cache}
	d.sched = newScheduler(o, d.queueChanged)
	d.budget = NewSpoolBudget(o.SpoolBudget, func(client string) int64 { return d.sched.lockedLimits(client).MaxQueueBytes })
	return d
}

// Spool is the budget every spool file of the gateway reserves from,
// the fronts' own included.
func (d *Dispatcher) Spool() *SpoolBudget { return d.budget }

// Do runs one job. An error means the job was not scanned: the front must
// answer with an error, never with a clean verdict.
//
// A stream is read to its end (spooled) before the job asks for a slot,
// so that a client trickling its bytes holds no slot, and the job's cost
// is known to the scheduler. While the job waits or runs, a client that
// disconnects (see internal/hangup) has it dropped.
func (d *Dispatcher) Do(ctx context.Context, job Job) (Result, error) {
	var o Outcome
	defer func() { d.done(job, o) }()
	start := time.Now()
	var key *Digest
	if job.Kind == Stream {
		f, sum, closeIt, err := d.streamFile(job.Data, job.Client, d.cache != nil && !job.Unique)
		if err != nil {
			o.Err = err
			return Result{}, err
		}
		defer closeIt()
		job.Data, key = f, sum
	}
	if res, ok := d.cached(job, key, &o); ok {
		return res, nil
	}
	if o.Err = d.enter(ctx, job.Client); o.Err != nil {
		o.Wait = time.Since(start)
		return Result{}, o.Err
	}
	defer d.leave()
	ctx, stop, err := d.serving(ctx)
	if err != nil {
		o.Err, o.Wait = err, time.Since(start)
		return Result{}, err
	}
	defer stop()
	defer d.hangups.Remove(d.hangups.Add(ctx))
	if job.Kind == Command { // PING, VERSION... never wait behind scans
		reply, err := d.run(ctx, job)
		o.Duration, o.Err = time.Since(start), err
		if err != nil {
			return Result{}, err
		}
		o.Result = Result{Reply: reply} // a command's reply is no verdict
		return o.Result, nil
	}
	return d.scan(ctx, job, start, &o)
}

// scan runs a stream or file job in a scheduler slot.
func (d *Dispatcher) scan(ctx context.Context, job Job, start time.Time, o *Outcome) (Result, error) {
	cost := unknownCost
	switch job.Kind {
	case Stream:
		cost = fileSize(job.Data.(*os.File))
	case File:
		cost = fileSize(job.File)
	}
	o.Bytes = max(cost, 0)
	t, queued, err := d.sched.acquire(ctx, job.Client, cost, start)
	o.Wait = time.Since(start)
	if err != nil {
		o.Err = err
		if queued && errors.Is(err, ErrClientGone) {
			o.Abandoned = "queued"
		}
		return Result{}, err
	}
	reply, err := d.run(ctx, job)
	o.Bulk = d.sched.bulkNow(t)
	d.sched.release(t)
	o.Duration = time.Since(start) - o.Wait
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrClientGone) {
			err = ErrClientGone
			o.Abandoned = "running"
		}
		o.Err = err
		return Result{}, err
	}
	// Read strictly, here for every front alike: a reply that is not a
	// verdict for the object scanned fails the job.
	object := StreamObject
	if job.Kind == File {
		object = FDObject(reply)
	}
	o.Result, o.Err = ParseVerdict(object, reply)
	if o.Err != nil {
		return Result{}, o.Err
	}
	if o.Cache != "" {
		d.cache.store(o.cacheKey, o.cacheGen, o.Result, d.sched.lockedLimits(job.Client).OnLimits)
	}
	o.Result = d.limits(job, o.Result)
	return o.Result, nil
}

// cached answers a stream the cache knows, with clamd's reply as it was,
// under this client's on_limits; else it notes the miss and the
// generation the verdict must be stored under.
func (d *Dispatcher) cached(job Job, key *Digest, o *Outcome) (Result, bool) {
	if d.cache == nil || key == nil {
		return Result{}, false
	}
	res, gen, ok := d.cache.lookup(*key)
	if gen == 0 { // paused: neither a hit nor a miss
		return Result{}, false
	}
	if !ok {
		o.Cache, o.cacheKey, o.cacheGen = "miss", *key, gen
		return Result{}, false
	}
	o.Cache = "hit"
	o.Bytes = fileSize(job.Data.(*os.File))
	o.Result = d.limits(job, res)
	return o.Result, true
}

// streamFile returns the stream as a file of known size, spooling it when
// it is not one already (a front's own spool is used as it is, and has no
// digest: the cache would have to read it a second time), with its digest
// when hash is set.
func (d *Dispatcher) streamFile(r io.Reader, client string, hash bool) (*os.File, *Digest, func(), error) {
	if f, ok := r.(*os.File); ok && fileSize(f) >= 0 {
		return f, nil, func() {}, nil
	}
	res := d.budget.Reserve(client)
	f, sum, err := spool(r, d.spoolDir, res, hash)
	if err != nil {
		res.Release()
		return nil, nil, nil, err
	}
	return f, sum, func() { f.Close(); res.Release() }, nil
}

func (d *Dispatcher) done(job Job, o Outcome) {
	if o.Err != nil && o.Abandoned == "" {
		args := []any{"client", job.Client, "protocol", job.Protocol, "object", job.Object,
			"err", o.Err, "reply", o.Result.Reply, // the refused reply, when there was one
			"waited", o.Wait.Round(time.Millisecond), "duration", o.Duration.Round(time.Millisecond)}
		if se := (*SpoolError)(nil); errors.As(o.Err, &se) {
			args = append(args, "cause", se.Err) // the spool's path and errno: for the log only
		}
		d.log.Warn("scan failed", args...)
	}
	for _, obs := range d.observers {
		obs.Done(job, o)
	}
}

func (d *Dispatcher) queueChanged(client string, jobs int, bytes int64) {
	for _, obs := range d.observers {
		obs.Queue(client, jobs, bytes)
	}
}

// enter admits a job, waiting while the dispatcher is held, for at most the
// client's max_wait.
func (d *Dispatcher) enter(ctx context.Context, client string) error {
	var timeout <-chan time.Time
	start := time.Now()
	for {
		d.mu.Lock()
		held := d.held
		if held == nil {
			d.active++
			d.mu.Unlock()
			return nil
		}
		d.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(d.sched.lockedLimits(client).MaxWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-held:
		case <-timeout:
			return &HeldError{Waited: time.Since(start).Round(time.Second)}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (d *Dispatcher) leave() {
	d.mu.Lock()
	if d.active--; d.active == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
	d.mu.Unlock()
}

// Hold makes new jobs wait until the returned release is called; jobs
// already admitted go on. Calling release twice is harmless. Holds add
// up: jobs wait until every one is released (the managed clamd's start,
// a reload that came meanwhile).
func (d *Dispatcher) Hold() (release func()) {
	d.mu.Lock()
	if d.held == nil {
		d.held, d.heldSince = make(chan struct{}), time.Now()
	}
	d.holds++
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			if d.holds--; d.holds == 0 {
				close(d.held)
				d.held = nil
			}
			d.mu.Unlock()
		})
	}
}

// WaitIdle waits until no admitted job is running, or ctx ends. The
// channel it waits on is made only when someone waits: jobs pay nothing.
func (d *Dispatcher) WaitIdle(ctx context.Context) error {
	d.mu.Lock()
	if d.active == 0 {
		d.mu.Unlock()
		return nil
	}
	if d.idle == nil {
		d.idle = make(chan struct{})
	}
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Outages is a backend that bounds how long jobs wait on engines that
// stopped answering (clamd.Pool, backend.backend_down_wait).
type Outages interface {
	// Serving returns a context that ends, with the error the job must
	// fail with as its cause, once no engine has answered for the bound;
	// it fails at once when that has already happened and lasts.
	Serving(ctx context.Context) (context.Context, error)
}

// serving has the job, queued or running, end when the backend's outage
// does (a hung engine), and not with the job's own timeout only.
func (d *Dispatcher) serving(ctx context.Context) (context.Context, func(), error) {
	b, ok := d.backend.(Outages)
	if !ok {
		return ctx, func() {}, nil
	}
	serve, err := b.Serving(ctx)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(serve, func() { cancel(context.Cause(serve)) })
	return ctx, func() { unhook(); cancel(nil) }, nil
}

func (d *Dispatcher) run(ctx context.Context, job Job) (reply string, err error) {
	switch job.Kind {
	case Stream:
		reply, err = d.backend.Instream(ctx, job.Data)
	case File:
		reply, err = d.backend.Fildes(ctx, job.File)
	default:
		reply, err = d.backend.Command(ctx, job.Command)
	}
	return reply, why(ctx, err)
}

// why returns the reason ctx was ended with (an outage, the client gone)
// rather than the bare "context canceled" the backend saw.
func why(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	if c := context.Cause(ctx); c != ctx.Err() {
		return c
	}
	return err
}
