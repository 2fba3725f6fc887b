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

// slowBackend answers every job after a pause: enough to observe the
// dispatcher's own bookkeeping, which is all these tests are about.
type slowBackend struct{ pause time.Duration }

func (b slowBackend) Instream(ctx context.Context, r io.Reader) (string, error) {
	time.Sleep(b.pause)
	return "stream: OK", nil
}
func (b slowBackend) Fildes(ctx context.Context, f *os.File) (string, error)   { return "fd[3]: OK", nil }
func (b slowBackend) Command(ctx context.Context, name string) (string, error) { return "PONG", nil }

func TestHold(t *testing.T) {
	d := NewDispatcher(slowBackend{}, slog.New(slog.DiscardHandler), Options{Limits: map[string]ClientLimits{"short": {MaxWait: 100 * time.Millisecond}}})
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

func TestWaitIdle(t *testing.T) {
	d := NewDispatcher(slowBackend{pause: 200 * time.Millisecond}, slog.New(slog.DiscardHandler), Options{})
	go d.Do(context.Background(), Job{Client: "a", Kind: Stream, Data: strings.NewReader("x")})
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := d.WaitIdle(context.Background()); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("WaitIdle returned after %v: %v", time.Since(start), err)
	}
}
