package scan

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestParseVerdict: only a well-formed clamd verdict for the object asked
// about is a verdict; clamd's ERROR lines are failures; anything else is
// an error, whatever it looks like.
func TestParseVerdict(t *testing.T) {
	tests := []struct {
		object, reply string
		verdict       Verdict
		threat        string
		notVerdict    bool
	}{
		{"stream", "stream: OK", Clean, "", false},
		{"fd[12]", "fd[12]: OK", Clean, "", false},
		{"stream", "stream: Eicar-Test-Signature FOUND", Infected, "Eicar-Test-Signature", false},
		{"stream", "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND", Infected, "Heuristics.Limits.Exceeded.MaxFileSize", false},
		{"stream", "INSTREAM size limit exceeded. ERROR", Failed, "", false},
		{"fd[12]", "fd[12]: Not a regular file ERROR", Failed, "", false},
		{"stream", "stream: OK ERROR", Failed, "", false},
		{"stream", "other: OK", Failed, "", true},
		{"stream", "fd[3]: OK", Failed, "", true},
		{"fd[12]", "fd[13]: OK", Failed, "", true},
		{"stream", "OK", Failed, "", true},
		{"stream", "stream: ok", Failed, "", true},
		{"stream", "stream: OK ", Failed, "", true},
		{"stream", "stream:OK", Failed, "", true},
		{"stream", "stream: OK\nstream: OK", Failed, "", true},
		{"stream", "stream: A FOUND\nstream: B FOUND", Failed, "", true},
		{"stream", "stream: OK\x00", Failed, "", true},
		{"stream", "stream:  FOUND", Failed, "", true},
		{"stream", "stream: FOUND", Failed, "", true},
		{"stream", "stream:  X FOUND", Failed, "", true},
		{"stream", "PONG", Failed, "", true},
		{"stream", "", Failed, "", true},
		{"", ": OK", Failed, "", true},
		{"stream", "\x7fELF", Failed, "", true},
	}
	for _, tc := range tests {
		got, err := ParseVerdict(tc.object, tc.reply)
		if got.Verdict != tc.verdict || got.Threat != tc.threat || errors.Is(err, ErrNotVerdict) != tc.notVerdict ||
			(err != nil && !tc.notVerdict) || got.Reply != tc.reply {
			t.Errorf("%s %q: %v %q %v, want %v %q notVerdict=%v", tc.object, tc.reply, got.Verdict, got.Threat, err, tc.verdict, tc.threat, tc.notVerdict)
		}
	}
}

func TestFDObject(t *testing.T) {
	for reply, want := range map[string]string{
		"fd[12]: OK": "fd[12]", "fd[12]: X FOUND": "fd[12]", "fd[12]: lstat() failed ERROR": "fd[12]",
		"fd[]: OK": "", "fd[x]: OK": "", "stream: OK": "", "12]: OK": "", "fd[12: OK": "", "": "",
	} {
		if got := FDObject(reply); got != want {
			t.Errorf("%q: %q, want %q", reply, got, want)
		}
	}
}

// FuzzParseVerdict: whatever a backend sends, a Clean verdict only ever
// comes from exactly "stream: OK".
func FuzzParseVerdict(f *testing.F) {
	for _, s := range []string{"stream: OK", "stream: X FOUND", "other: OK", "a ERROR", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		res, err := ParseVerdict(StreamObject, reply)
		if err == nil && res.Verdict == Clean && reply != "stream: OK" {
			t.Fatalf("%q read as clean", reply)
		}
		if err != nil && res.Verdict != Failed {
			t.Fatalf("%q: an error with verdict %v", reply, res.Verdict)
		}
	})
}

// okBackend answers every job at once: enough to observe the dispatcher's
// own bookkeeping, which is all these tests are about.
type okBackend struct{}

func (okBackend) Instream(context.Context, io.Reader) (string, error) { return "stream: OK", nil }
func (okBackend) Fildes(context.Context, *os.File) (string, error)    { return "fd[3]: OK", nil }
func (okBackend) Command(context.Context, string) (string, error)     { return "PONG", nil }

func TestHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDispatcher(okBackend{}, slog.New(slog.DiscardHandler), Options{Limits: map[string]ClientLimits{"short": {MaxWait: 100 * time.Millisecond}}})
		job := Job{Client: "patient", Kind: Stream, Data: strings.NewReader("x")}
		release := d.Hold()
		other := d.Hold() // a second hold meanwhile (a reload during the engine's start)
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
		select {
		case err := <-done:
			t.Fatalf("job ran while the second hold lasted: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		other()
		if err := <-done; err != nil {
			t.Fatalf("after release: %v", err)
		}
	})
}

// TestWaitIdle: while a job runs WaitIdle does not report idle (it gives
// up only with its context), and once the job ends it does.
func TestWaitIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
}
