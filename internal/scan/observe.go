package scan

import (
	"context"
	"log/slog"
	"time"
)

// Observer sees what the dispatcher does: metrics and the audit log.
// Its methods are called on the job's goroutine and must not block.
type Observer interface {
	// Done is called once per job that reached the dispatcher, admitted or
	// not.
	Done(job Job, o Outcome)
	// Queue reports a client's waiting jobs and their bytes when they
	// change.
	Queue(client string, jobs int, bytes int64)
}

// Outcome is what became of one job.
type Outcome struct {
	Result   Result
	Err      error         // not scanned: refused (busy, held) or failed
	Wait     time.Duration // in the gateway's queue (and hold) before clamd
	Duration time.Duration // at clamd
	Bytes    int64         // size of the stream or file scanned, when known
	Bulk     bool          // classified bulk (by its size, or by its time at clamd)
	// Abandoned is "queued" or "running" when the client disconnected and
	// the job was dropped there.
	Abandoned string
	// Cache is "hit" when the verdict cache answered (clamd was not
	// asked), "miss" when it was asked and did not know the stream, ""
	// when it was not asked (no cache, paused, not a spooled stream).
	Cache    string
	cacheKey Digest
	cacheGen uint64
}

// Verdict names the outcome for logs and metrics: clean, infected,
// failed (clamd could not scan), busy (the gateway refused to queue it) or
// abandoned (its client disconnected first).
func (o Outcome) Verdict() string {
	switch {
	case IsBusy(o.Err):
		return "busy"
	case o.Abandoned != "":
		return "abandoned"
	case o.Err != nil:
		return "failed"
	}
	return o.Result.Verdict.String()
}

// AuditLog writes one line per scan: who asked, for what, and what clamd
// said. With log_format = "json" the lines are JSON.
type AuditLog struct{ Log *slog.Logger }

func (a AuditLog) Done(job Job, o Outcome) {
	// Checked first: building the line costs allocations on every scan,
	// even when the log level drops it.
	if job.Kind == Command || !a.Log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("client", job.Client), slog.String("protocol", job.Protocol),
		slog.String("object", job.Object), slog.String("verdict", o.Verdict()),
		slog.Duration("duration", (o.Wait+o.Duration).Round(time.Microsecond)))
	if job.Identity != "" {
		attrs = append(attrs, slog.String("identity", job.Identity))
	}
	if job.Kind == Stream {
		attrs = append(attrs, slog.Int64("bytes", o.Bytes))
	}
	if o.Result.Threat != "" {
		attrs = append(attrs, slog.String("threat", o.Result.Threat))
	}
	if o.Cache == "hit" {
		attrs = append(attrs, slog.Bool("cached", true))
	}
	if o.Wait > time.Millisecond {
		attrs = append(attrs, slog.Duration("queued", o.Wait.Round(time.Millisecond)))
	}
	if o.Err != nil {
		attrs = append(attrs, slog.String("err", o.Err.Error()))
	}
	a.Log.LogAttrs(context.Background(), slog.LevelInfo, "scan", attrs...)
}

func (AuditLog) Queue(string, int, int64) {}
