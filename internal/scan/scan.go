// Package scan is the one way from a protocol front to the engine: a front
// turns a client request into a Job, and the Dispatcher runs it against the
// clamd backend under the client's limits. No front talks to clamd itself.
package scan

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Kind is what a job asks of clamd.
type Kind int

const (
	Stream  Kind = iota // INSTREAM: Data is streamed to clamd
	File                // FILDES: File, opened by the gateway, is handed to clamd
	Command             // a non-scan command (PING, VERSION, STATS, RELOAD...)
)

// Job is one request for the engine.
type Job struct {
	Client   string // policy name: limits and logs
	Protocol string // "clamd", "icap", "milter"
	Kind     Kind
	Data     io.Reader // Stream
	File     *os.File  // File
	Command  string    // Command: clamd command name
	Object   string    // what the client called it (path, "stream"), for logs
}

// Verdict is what a scan reply means for the client.
type Verdict int

const (
	Failed Verdict = iota // anything that is not a clean or infected verdict
	Clean
	Infected
)

func (v Verdict) String() string {
	return [...]string{"failed", "clean", "infected"}[v]
}

// Result is clamd's reply to a job.
type Result struct {
	Reply   string // clamd's reply text without its terminator
	Verdict Verdict
	Threat  string // signature name when Infected
}

// Backend is a clamd: the dispatcher's only way to the engine.
type Backend interface {
	Instream(ctx context.Context, r io.Reader) (string, error)
	Fildes(ctx context.Context, f *os.File) (string, error)
	Command(ctx context.Context, name string) (string, error)
}

// ParseReply reads a verdict from clamd's reply to a scan. ALLMATCHSCAN can
// produce several lines; the first threat names the result.
func ParseReply(reply string) Result {
	res := Result{Reply: reply}
	for _, line := range strings.Split(reply, "\n") {
		switch {
		case strings.HasSuffix(line, " FOUND"):
			if res.Verdict != Infected {
				res.Verdict, res.Threat = Infected, threatOf(line)
			}
		case strings.HasSuffix(line, ": OK") && res.Verdict == Failed:
			res.Verdict = Clean
		}
	}
	if strings.HasSuffix(reply, " ERROR") {
		res.Verdict, res.Threat = Failed, ""
	}
	return res
}

func threatOf(line string) string {
	line = strings.TrimSuffix(line, " FOUND")
	if i := strings.LastIndex(line, ": "); i >= 0 {
		return line[i+2:]
	}
	return line
}

// ClientLimits bound one client in the dispatcher.
type ClientLimits struct {
	Concurrent int           // scans at once; 0 = no limit
	MaxWait    time.Duration // longest wait while the engine is held; 0 = DefaultMaxWait
}

// DefaultMaxWait is how long a job waits for a held engine (a database
// reload) before its client gets an error.
const DefaultMaxWait = 2 * time.Minute

// HeldError is a job that waited longer than its client's max_wait for a
// held engine: the client gets an error, never a verdict.
type HeldError struct{ Waited time.Duration }

func (e *HeldError) Error() string {
	return fmt.Sprintf("engine is reloading its database: gave up after %s", e.Waited)
}

// Dispatcher runs jobs against the backend within each client's limits.
// It can be held, while clamd reloads its database, so that new jobs wait
// in the gateway instead of piling up (or timing out) inside clamd.
type Dispatcher struct {
	backend Backend
	log     *slog.Logger
	limits  map[string]ClientLimits
	slots   map[string]chan struct{} // per-client concurrency; absent = unlimited

	mu     sync.Mutex
	held   chan struct{} // non-nil while held; closed on release
	active int           // jobs admitted and not finished
}

// NewDispatcher serves jobs from clients whose limits are given by name; a
// client missing from limits is not limited.
func NewDispatcher(b Backend, log *slog.Logger, limits map[string]ClientLimits) *Dispatcher {
	d := &Dispatcher{backend: b, log: log, limits: limits, slots: map[string]chan struct{}{}}
	for name, l := range limits {
		if l.Concurrent > 0 {
			d.slots[name] = make(chan struct{}, l.Concurrent)
		}
	}
	return d
}

// Do runs one job. An error means the job was not scanned: the front must
// answer with an error, never with a clean verdict.
func (d *Dispatcher) Do(ctx context.Context, job Job) (Result, error) {
	if err := d.enter(ctx, job.Client); err != nil {
		d.log.Warn("job not admitted", "client", job.Client, "protocol", job.Protocol, "object", job.Object, "err", err)
		return Result{}, err
	}
	defer d.leave()
	if slot, ok := d.slots[job.Client]; ok {
		select {
		case slot <- struct{}{}:
			defer func() { <-slot }()
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	start := time.Now()
	reply, err := d.run(ctx, job)
	if err != nil {
		d.log.Warn("scan failed", "client", job.Client, "protocol", job.Protocol,
			"object", job.Object, "err", err, "duration", time.Since(start))
		return Result{}, err
	}
	res := ParseReply(reply)
	// Checked first: building the record's arguments costs allocations on
	// every scan even when debug logging is off.
	if job.Kind != Command && d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.Debug("scan", "client", job.Client, "protocol", job.Protocol, "object", job.Object,
			"verdict", res.Verdict.String(), "threat", res.Threat, "duration", time.Since(start))
	}
	return res, nil
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
			t := time.NewTimer(d.maxWait(client))
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
	d.active--
	d.mu.Unlock()
}

func (d *Dispatcher) maxWait(client string) time.Duration {
	if w := d.limits[client].MaxWait; w > 0 {
		return w
	}
	return DefaultMaxWait
}

// Hold makes new jobs wait until the returned release is called; jobs
// already admitted go on. Calling release twice is harmless.
func (d *Dispatcher) Hold() (release func()) {
	d.mu.Lock()
	if d.held == nil {
		d.held = make(chan struct{})
	}
	held := d.held
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			if d.held == held {
				close(held)
				d.held = nil
			}
			d.mu.Unlock()
		})
	}
}

// WaitIdle waits until no admitted job is running, or ctx ends.
func (d *Dispatcher) WaitIdle(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		n := d.active
		d.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Backend is the engine the dispatcher runs jobs on, for the one caller
// that must reach it while the dispatcher is held: the reloader.
func (d *Dispatcher) Backend() Backend { return d.backend }

func (d *Dispatcher) run(ctx context.Context, job Job) (string, error) {
	switch job.Kind {
	case Stream:
		return d.backend.Instream(ctx, job.Data)
	case File:
		return d.backend.Fildes(ctx, job.File)
	default:
		return d.backend.Command(ctx, job.Command)
	}
}
