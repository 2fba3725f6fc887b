// Package scan is the one way from a protocol front to the engine: a front
// turns a client request into a Job, and the Dispatcher runs it against the
// clamd backend under the client's limits. No front talks to clamd itself.
package scan

import (
	"context"
	"io"
	"os"
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
	// Identity is the TLS client certificate's name ("dns:mx1…"), for the
	// audit log; "" for other clients.
	Identity string
	// Unique says no other object has these bytes (a whole mail, headers
	// included): the verdict cache is not asked, and the stream not hashed.
	Unique bool
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
