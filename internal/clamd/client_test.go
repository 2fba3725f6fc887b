package clamd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCommandReplies: every shape of reply a command can get, from a
// scripted clamd. Only a NUL-terminated reply is a reply; a close without
// a byte is an answer only for the commands clamd 1.4 closes silently.
func TestCommandReplies(t *testing.T) {
	stats := "POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live 1  idle 0 max 10\nQUEUE: 0 items\nEND"
	tests := []struct {
		name, command string
		write         []string
		want          string
		wantErr       error // nil = success
	}{
		{"pong", "PING", []string{"PONG\x00"}, "PONG", nil},
		{"version", "VERSION", []string{"ClamAV 1.4.6/27000/Sat Dec  5 2026\x00"}, "ClamAV 1.4.6/27000/Sat Dec  5 2026", nil},
		{"multi-line stats", "STATS", []string{stats + "\x00"}, stats, nil},
		{"reply in one-byte pieces", "PING", []string{"P", "O", "N", "G", "\x00"}, "PONG", nil},
		{"bytes after the NUL ignored", "PING", []string{"PONG\x00junk"}, "PONG", nil},
		{"unknown command relayed", "BOGUS", []string{"UNKNOWN COMMAND\x00"}, "UNKNOWN COMMAND", nil},
		{"reload", "RELOAD", []string{"RELOADING\x00"}, "RELOADING", nil},
		{"truncated pong", "PING", []string{"PON"}, "", errTruncated},
		{"truncated stats", "STATS", []string{stats}, "", errTruncated},
		{"truncated reload", "RELOAD", []string{"RELOADING"}, "", errTruncated},
		{"silent close: SHUTDOWN", "SHUTDOWN", nil, "", nil},
		{"silent close: QUIT", "QUIT", nil, "", nil},
		{"silent close: DETSTATS", "DETSTATS", nil, "", nil},
		{"silent close: DETSTATSCLEAR", "DETSTATSCLEAR", nil, "", nil},
		{"dropped: PING", "PING", nil, "", errNoReply},
		{"dropped: VERSION", "VERSION", nil, "", errNoReply},
		{"dropped: STATS", "STATS", nil, "", errNoReply},
		{"dropped: RELOAD", "RELOAD", nil, "", errNoReply},
		{"dropped: VERSIONCOMMANDS", "VERSIONCOMMANDS", nil, "", errNoReply},
		{"truncated SHUTDOWN is no answer", "SHUTDOWN", []string{"bye"}, "", errTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, says(tt.write...))
			got, err := f.client("unix").Command(context.Background(), tt.command)
			checkReply(t, got, err, tt.want, tt.wantErr)
			if reqs := f.served(); len(reqs) != 1 || reqs[0].command != tt.command || reqs[0].err != nil {
				t.Errorf("clamd received %+v, want one z%s", reqs, tt.command)
			}
		})
	}
}

func checkReply(t *testing.T, got string, err error, want string, wantErr error) {
	t.Helper()
	if wantErr == nil {
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
		return
	}
	var ue *UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, wantErr) {
		t.Fatalf("got %q, %v; want an UnavailableError wrapping %q", got, err, wantErr)
	}
	if got != "" {
		t.Fatalf("an error came with the reply %q", got)
	}
}

// TestCommandBounds: a reply without an end, a clamd that never answers,
// and a socket nothing listens on all fail, each in its own way.
func TestCommandBounds(t *testing.T) {
	t.Run("reply too long", func(t *testing.T) {
		f := newFake(t, says(strings.Repeat("x", maxReply+1024)))
		_, err := f.client("unix").Command(context.Background(), "STATS")
		if err == nil || !strings.Contains(err.Error(), "too long") {
			t.Fatalf("err = %v, want reply too long", err)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		f := newFake(t, func(request) answer { return answer{hang: true} })
		c := f.client("unix")
		c.Timeout = 100 * time.Millisecond
		_, err := c.Command(context.Background(), "PING")
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v, want the client's deadline", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		f := newFake(t, func(request) answer { return answer{hang: true} })
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := f.client("unix").Command(ctx, "PING")
		var ue *UnavailableError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want an UnavailableError", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		f := newFake(t, says("PONG\x00"))
		f.setRefuse(true)
		_, err := f.client("unix").Command(context.Background(), "PING")
		var de *DialError
		if !errors.As(err, &de) {
			t.Fatalf("err = %v (%T), want a DialError", err, errors.Unwrap(err))
		}
	})
}

// TestInstreamReplies: INSTREAM's framing and every reply shape, including
// clamd's size-limit refusal in the middle of the stream.
func TestInstreamReplies(t *testing.T) {
	small := []byte("hello")
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16) // 2 MiB: many chunks
	tests := []struct {
		name    string
		data    []byte
		answer  answer
		want    string
		wantErr error
	}{
		{"clean", small, answer{write: []string{"stream: OK\x00"}}, "stream: OK", nil},
		{"found", small, answer{write: []string{"stream: Eicar-Test-Signature FOUND\x00"}}, "stream: Eicar-Test-Signature FOUND", nil},
		{"large clean", big, answer{write: []string{"stream: OK\x00"}}, "stream: OK", nil},
		{"empty stream", nil, answer{write: []string{"stream: OK\x00"}}, "stream: OK", nil},
		{"verdict without its NUL", small, answer{write: []string{"stream: OK"}}, "", errTruncated},
		{"verdict cut short", small, answer{write: []string{"stream: O"}}, "", errTruncated},
		{"closed without a verdict", small, answer{}, "", errNoReply},
		{"size limit mid-stream", big, answer{readLimit: 64 << 10, write: []string{"INSTREAM size limit exceeded. ERROR\x00"}},
			"INSTREAM size limit exceeded. ERROR", nil},
		{"closed mid-stream", big, answer{readLimit: 64 << 10}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(request) answer { return tt.answer })
			got, err := f.client("tcp").Instream(context.Background(), bytes.NewReader(tt.data))
			if tt.name == "closed mid-stream" { // a write or a read fails: either way unavailable
				var ue *UnavailableError
				if !errors.As(err, &ue) || got != "" {
					t.Fatalf("got %q, %v; want an UnavailableError", got, err)
				}
				return
			}
			checkReply(t, got, err, tt.want, tt.wantErr)
			reqs := f.served()
			if len(reqs) != 1 || reqs[0].command != "INSTREAM" {
				t.Fatalf("clamd received %+v", reqs)
			}
			if tt.answer.readLimit == 0 && (reqs[0].err != nil || !bytes.Equal(reqs[0].stream, tt.data)) {
				t.Fatalf("clamd received %d bytes (%v), want the %d sent", len(reqs[0].stream), reqs[0].err, len(tt.data))
			}
		})
	}
}

// TestInstreamReaderError: the client's own read error is returned as it
// is, and a stream that fails before its first byte never reaches clamd.
func TestInstreamReaderError(t *testing.T) {
	f := newFake(t, says("stream: OK\x00"))
	boom := errors.New("client went away")
	_, err := f.client("tcp").Instream(context.Background(), errReader{boom})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the reader's", err)
	}
	if reqs := f.served(); len(reqs) != 0 {
		t.Fatalf("clamd was dialled for a stream with no data: %+v", reqs)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestFildes: the descriptor rides with FILDES over a unix socket, the
// verdict comes back as clamd names it, a local stream file is passed as
// a descriptor and renamed "stream", and TCP refuses FILDES.
func TestFildes(t *testing.T) {
	file, err := os.CreateTemp(t.TempDir(), "scan")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	t.Run("verdict", func(t *testing.T) {
		f := newFake(t, says("fd[7]: OK\x00"))
		got, err := f.client("unix").Fildes(context.Background(), file)
		checkReply(t, got, err, "fd[7]: OK", nil)
		if reqs := f.served(); len(reqs) != 1 || reqs[0].command != "FILDES" || !reqs[0].fd {
			t.Fatalf("clamd received %+v, want FILDES with a descriptor", reqs)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		f := newFake(t, says("fd[7]: OK"))
		got, err := f.client("unix").Fildes(context.Background(), file)
		checkReply(t, got, err, "", errTruncated)
	})
	t.Run("stream passed as a descriptor", func(t *testing.T) {
		f := newFake(t, says("fd[9]: Eicar-Test-Signature FOUND\x00"))
		c := f.client("unix")
		c.PassStreams = true
		got, err := c.Instream(context.Background(), file)
		checkReply(t, got, err, "stream: Eicar-Test-Signature FOUND", nil)
		if reqs := f.served(); len(reqs) != 1 || !reqs[0].fd {
			t.Fatalf("clamd received %+v, want FILDES", reqs)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		f := newFake(t, says("fd[7]: OK\x00"))
		_, err := f.client("tcp").Fildes(context.Background(), file)
		var ue *UnavailableError
		if !errors.As(err, &ue) || len(f.served()) != 0 {
			t.Fatalf("err = %v, served %d; want a refusal before dialling", err, len(f.served()))
		}
	})
}
