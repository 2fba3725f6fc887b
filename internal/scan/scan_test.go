package scan

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		reply   string
		verdict Verdict
		threat  string
	}{
		{"stream: OK", Clean, ""},
		{"fd[12]: OK", Clean, ""},
		{"stream: Eicar-Test-Signature FOUND", Infected, "Eicar-Test-Signature"},
		{"/a: b: c.txt: Win.Test FOUND", Infected, "Win.Test"},
		{"/x: A FOUND\n/x: B FOUND", Infected, "A"},
		{"INSTREAM size limit exceeded. ERROR", Failed, ""},
		{"fd[12]: Not a regular file ERROR", Failed, ""},
		{"/d: Not supported file type ERROR\n/d: OK", Clean, ""},
		{"PONG", Failed, ""},
		{"", Failed, ""},
		{"stream: OK ERROR", Failed, ""},
	}
	for _, tc := range tests {
		got := ParseReply(tc.reply)
		if got.Verdict != tc.verdict || got.Threat != tc.threat {
			t.Errorf("%q: %v %q, want %v %q", tc.reply, got.Verdict, got.Threat, tc.verdict, tc.threat)
		}
	}
}

// okBackend answers every job at once: enough to observe the dispatcher's
// own bookkeeping, which is all these tests are about.
type okBackend struct{}

func (okBackend) Instream(context.Context, io.Reader) (string, error) { return "stream: OK", nil }
func (okBackend) Fildes(context.Context, *os.File) (string, error)    { return "fd[3]: OK", nil }
func (okBackend) Command(context.Context, string) (string, error)     { return "PONG", nil }

func TestHold(t *testing.T) {
	d := NewDispatcher(okBackend{}, slog.New(slog.DiscardHandler), Options{Limits: map[string]ClientLimits{"short": {MaxWait: 100 * time.Millisecond}}})
	job := Job{Client: "patient", Kind: Stream, Data: strings.NewReader("x")}
	release := d.Hold()
	done := make(chan error, 1)
	go func() { _, err := d.Do(context.Background(), job); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("job ran while held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	_, err := d.Do(context.Background(), Job{Client: "short", Kind: Stream, Data: strings.NewReader("x")})
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("short max_wait: %v", err)
	}
	release()
	release()
	if err := <-done; err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestWaitIdle: while a job runs WaitIdle does not report idle (it gives
// up only with its context), and once the job ends it does.
func TestWaitIdle(t *testing.T) {
	b := newGateBackend()
	d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{})
	done := make(chan struct{})
	go func() {
		d.Do(context.Background(), Job{Client: "a", Kind: Stream, Data: strings.NewReader("x")})
		close(done)
	}()
	waitRunning(t, b, 1)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.WaitIdle(cancelled); err == nil {
		t.Fatal("WaitIdle reported idle while a job ran")
	}
	b.release <- struct{}{}
	<-done
	if err := d.WaitIdle(context.Background()); err != nil {
		t.Fatalf("WaitIdle after the job: %v", err)
	}
}
