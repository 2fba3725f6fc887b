package httpapi

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"clamgate/internal/scan"
)

// Board keeps what the status page shows of the dispatcher's work: per
// client policy, counts, queue and waits; and the last errors. It is one
// of the dispatcher's observers. It keeps counts and names only: never an
// object's name or path.
type Board struct {
	mu      sync.Mutex
	clients map[string]*PolicyStatus
	errors  []LastError // newest last, at most maxErrors
}

const maxErrors = 10

// PolicyStatus is one client policy's line of the status page.
type PolicyStatus struct {
	Name        string `json:"name"`
	Scans       int64  `json:"scans"`
	Clean       int64  `json:"clean"`
	Infected    int64  `json:"infected"`
	Failed      int64  `json:"failed"`
	Busy        int64  `json:"busy"`
	Abandoned   int64  `json:"abandoned"`
	Bytes       int64  `json:"bytes"`
	QueuedJobs  int    `json:"queued_jobs"`
	QueuedBytes int64  `json:"queued_bytes"`
	WaitMaxMS   int64  `json:"wait_max_ms"`
	WaitAvgMS   int64  `json:"wait_avg_ms"`
	waitSum     time.Duration
}

// LastError is a job that was not scanned, or that clamd failed.
type LastError struct {
	Time     time.Time `json:"time"`
	Policy   string    `json:"policy"`
	Protocol string    `json:"protocol"`
	Error    string    `json:"error"`
}

// NewBoard is an empty board.
func NewBoard() *Board { return &Board{clients: map[string]*PolicyStatus{}} }

func (b *Board) client(name string) *PolicyStatus {
	c := b.clients[name]
	if c == nil {
		c = &PolicyStatus{Name: name}
		b.clients[name] = c
	}
	return c
}

// Done counts a job (commands are not scans and are not counted).
func (b *Board) Done(job scan.Job, o scan.Outcome) {
	if job.Kind == scan.Command {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.client(job.Client)
	c.Scans++
	c.Bytes += o.Bytes
	c.waitSum += o.Wait
	c.WaitMaxMS = max(c.WaitMaxMS, o.Wait.Milliseconds())
	switch o.Verdict() {
	case "clean":
		c.Clean++
	case "infected":
		c.Infected++
	case "busy":
		c.Busy++
	case "abandoned":
		c.Abandoned++
	default:
		c.Failed++
	}
	if why := errorText(o); why != "" {
		b.errors = append(b.errors, LastError{Time: time.Now().UTC(), Policy: job.Client, Protocol: job.Protocol, Error: why})
		if len(b.errors) > maxErrors {
			b.errors = slices.Delete(b.errors, 0, len(b.errors)-maxErrors)
		}
	}
}

// errorText is what the board says of a failed job: the error (the
// dispatcher's and the backend's words, which name no object), or clamd's
// ERROR reply with its object name (stream, fd[N]) dropped.
func errorText(o scan.Outcome) string {
	switch {
	case o.Abandoned != "":
		return ""
	case o.Err != nil:
		return o.Err.Error()
	case o.Result.Verdict == scan.Failed:
		_, after, found := strings.Cut(o.Result.Reply, ": ")
		if found {
			return "clamd: " + after
		}
		return "clamd: " + o.Result.Reply
	}
	return ""
}

// Queue records a client's waiting jobs.
func (b *Board) Queue(client string, jobs int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.client(client)
	c.QueuedJobs, c.QueuedBytes = jobs, bytes
}

// snapshot copies the board, with a line for every policy named (counts
// 0 when it made no request yet).
func (b *Board) snapshot(policies []string) ([]PolicyStatus, []LastError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range policies {
		b.client(p)
	}
	var out []PolicyStatus
	for _, name := range slices.Sorted(maps.Keys(b.clients)) {
		c := *b.clients[name]
		if c.Scans > 0 {
			c.WaitAvgMS = (c.waitSum / time.Duration(c.Scans)).Milliseconds()
		}
		out = append(out, c)
	}
	errs := slices.Clone(b.errors)
	slices.Reverse(errs)
	return out, errs
}
