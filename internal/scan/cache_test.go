package scan

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// replyBackend answers every stream with reply, counting the scans; during
// a scan it calls meanwhile, if set.
type replyBackend struct {
	reply     string
	scans     atomic.Int32
	meanwhile func()
}

func (b *replyBackend) Instream(_ context.Context, r io.Reader) (string, error) {
	io.Copy(io.Discard, r)
	b.scans.Add(1)
	if b.meanwhile != nil {
		b.meanwhile()
	}
	return b.reply, nil
}
func (b *replyBackend) Fildes(context.Context, *os.File) (string, error) { return "fd[3]: OK", nil }
func (b *replyBackend) Command(context.Context, string) (string, error)  { return "PONG", nil }

func cacheDispatcher(b Backend, c *VerdictCache) *Dispatcher {
	return NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 2, Cache: c})
}

func scanTwice(t *testing.T, d *Dispatcher, body string) {
	t.Helper()
	for range 2 {
		if _, err := d.Do(context.Background(), Job{Client: "c", Kind: Stream, Data: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCacheStores: what is a definite verdict is answered from the cache
// the second time; a clamd ERROR or a reply that is not a verdict never is.
func TestCacheStores(t *testing.T) {
	for reply, cached := range map[string]bool{
		"stream: OK": true, "stream: X FOUND": true,
		"stream: Can't allocate memory ERROR": false, "INSTREAM size limit exceeded. ERROR": false,
	} {
		c := NewVerdictCache(10, 1<<20)
		c.Resume()
		b := &replyBackend{reply: reply}
		scanTwice(t, cacheDispatcher(b, c), "x")
		if want := map[bool]int32{true: 1, false: 2}[cached]; b.scans.Load() != want {
			t.Errorf("%q: clamd asked %d times, want %d", reply, b.scans.Load(), want)
		}
	}
}

// TestCachePauseRace: a scan that began before the database changed does
// not store its verdict, even if the cache serves again when it ends; a
// paused cache answers nothing.
func TestCachePauseRace(t *testing.T) {
	c := NewVerdictCache(10, 1<<20)
	c.Resume()
	b := &replyBackend{reply: "stream: OK"}
	b.meanwhile = func() { c.Pause(); c.Resume() }
	d := cacheDispatcher(b, c)
	scanTwice(t, d, "x")
	if b.scans.Load() != 2 {
		t.Errorf("a verdict from before the change was stored")
	}
	b.meanwhile = nil
	scanTwice(t, d, "y")
	c.Pause()
	scanTwice(t, d, "y")
	if b.scans.Load() != 5 {
		t.Errorf("clamd asked %d times, want 5: a paused cache answered", b.scans.Load())
	}
}

// TestCacheBounds: entries and bytes both bound the cache, least recently
// used out first.
func TestCacheBounds(t *testing.T) {
	c := NewVerdictCache(3, 1<<20)
	c.Resume()
	d := cacheDispatcher(&replyBackend{reply: "stream: OK"}, c)
	for i := range 5 {
		scanTwice(t, d, fmt.Sprint(i))
	}
	if n, _ := c.Size(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
	small := NewVerdictCache(100, 2*cost(Result{Reply: "stream: OK"}))
	small.Resume()
	d = cacheDispatcher(&replyBackend{reply: "stream: OK"}, small)
	for i := range 5 {
		scanTwice(t, d, fmt.Sprint(i))
	}
	if n, bytes := small.Size(); n != 2 || bytes > 2*cost(Result{Reply: "stream: OK"}) {
		t.Errorf("%d entries, %d bytes, want 2 within the byte bound", n, bytes)
	}
	if NewVerdictCache(0, 1) != nil || NewVerdictCache(1, 0) != nil {
		t.Error("a zero bound must mean no cache")
	}
}

// TestCacheUnique: a job whose bytes no other object shares (a whole
// mail) is neither looked up nor stored: clamd scans it every time.
func TestCacheUnique(t *testing.T) {
	c := NewVerdictCache(10, 1<<20)
	c.Resume()
	b := &replyBackend{reply: "stream: OK"}
	d := cacheDispatcher(b, c)
	for range 2 {
		if _, err := d.Do(context.Background(), Job{Client: "c", Kind: Stream, Data: strings.NewReader("a mail"), Unique: true}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := c.Size(); b.scans.Load() != 2 || n != 0 {
		t.Errorf("unique jobs: %d scans, %d entries; want 2 scans, nothing stored", b.scans.Load(), n)
	}
}
