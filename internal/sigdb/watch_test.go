package sigdb

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestWatcherCoalesces writes an update the way freshclam does (a tmp
// directory, several files renamed in a burst): the watcher reports it once,
// after the burst, and not while a temporary file is still there.
func TestWatcherCoalesces(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "main.ndb", "A:0:*:41414141\n")
	first, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []*Snapshot
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &Watcher{Dir: dir, Settle: 300 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	go w.Run(ctx, first.Digest, func(s *Snapshot) bool {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
		return true
	})
	time.Sleep(100 * time.Millisecond) // the watch is in place

	tmp := filepath.Join(dir, "tmp.1234")
	os.Mkdir(tmp, 0o755)
	for _, name := range []string{"daily.ndb", "extra.hdb", "more.ndb"} {
		write(t, tmp, name, "B:0:*:42424242\n")
		os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name))
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond) // past settle, but tmp.1234 is still there
	mu.Lock()
	early := len(got)
	mu.Unlock()
	if early != 0 {
		t.Fatalf("reported %d times while the update was in progress", early)
	}
	os.Remove(tmp)
	time.Sleep(800 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || len(got[0].Files) != 4 {
		t.Fatalf("got %d reports, want one with 4 files", len(got))
	}
}

// TestWatcherRetries offers a change again when the callback could not act
// on it (clamd did not reload).
func TestWatcherRetries(t *testing.T) {
	dir := t.TempDir()
	calls := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &Watcher{Dir: dir, Settle: 100 * time.Millisecond, Poll: 200 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	var n int
	go w.Run(ctx, "", func(*Snapshot) bool {
		n++
		calls <- struct{}{}
		return n > 1
	})
	write(t, dir, "a.ndb", "A:0:*:41414141\n")
	for i := range 2 {
		select {
		case <-calls:
		case <-time.After(3 * time.Second):
			t.Fatalf("call %d never came", i+1)
		}
	}
	select {
	case <-calls:
		t.Fatal("reported again after it was accepted")
	case <-time.After(500 * time.Millisecond):
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
