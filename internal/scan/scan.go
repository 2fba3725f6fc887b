// Package scan is the one way from a protocol front to the engine: a front
// turns a client request into a Job, and the Dispatcher runs it against the
// clamd backend under the client's limits. No front talks to clamd itself.
package scan

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
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

// Dispatcher runs jobs against the backend within each client's limits.
type Dispatcher struct {
	backend Backend
	log     *slog.Logger
	slots   map[string]chan struct{} // per-client concurrency; absent = unlimited
}

// NewDispatcher serves jobs from clients whose concurrency limits are given
// by name; a client missing from limits (or with 0) is not limited.
func NewDispatcher(b Backend, log *slog.Logger, limits map[string]int) *Dispatcher {
	d := &Dispatcher{backend: b, log: log, slots: map[string]chan struct{}{}}
	for name, n := range limits {
		if n > 0 {
			d.slots[name] = make(chan struct{}, n)
		}
	}
	return d
}

// Do runs one job. An error means the job was not scanned: the front must
// answer with an error, never with a clean verdict.
func (d *Dispatcher) Do(ctx context.Context, job Job) (Result, error) {
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
