package engine

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Health is the managed clamd as its supervisor sees it, for /readyz,
// doctor (through /readyz) and the metrics: a crash loop must be visible
// as one, with clamd's own words, not as "loading its database".
type Health struct {
	Running   bool      // a clamd process runs now
	Started   time.Time // when the running (or last) clamd started
	Exits     int       // exits in a row, each after less than a minute of running
	Crashes   uint64    // every exit not asked for, since the gateway started
	LastExit  string    // how the last one ended
	LastError string    // clamd's last error lines (up to 3) since it last started
	NextStart time.Time // when a clamd that exited is started again
}

// CrashLooping reports whether clamd keeps exiting: it has exited and is
// not running, or has run for less than a minute since.
func (h Health) CrashLooping() bool {
	return h.Exits > 0 && (!h.Running || time.Since(h.Started) < time.Minute)
}

// Err describes a crash loop for /readyz; nil when there is none.
func (h Health) Err() error {
	if !h.CrashLooping() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the managed clamd is crash-looping: it exited %d time(s) in a row (last: %s)", h.Exits, h.LastExit)
	if !h.Running && !h.NextStart.IsZero() {
		fmt.Fprintf(&b, ", next start in %s", time.Until(h.NextStart).Round(time.Second))
	}
	if h.LastError != "" {
		fmt.Fprintf(&b, "; clamd's last error: %s", h.LastError)
	}
	return fmt.Errorf("%s", b.String())
}

// healthBook is where Run and clamd's output record Health.
type healthBook struct {
	mu sync.Mutex
	h  Health
}

func (b *healthBook) get() Health {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.h
}

func (b *healthBook) update(f func(*Health)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.h)
}

// Health is the supervisor's view of clamd now.
func (e *Engine) Health() Health { return e.health.get() }

// noteError keeps clamd's last error lines, without its time stamps:
// LibClamAV names the file at fault a line or two before clamd's final
// ERROR, which alone says only "Malformed database".
func (b *healthBook) noteError(line string) {
	if _, rest, ok := strings.Cut(line, " -> "); ok {
		line = strings.TrimSpace(strings.SplitN(line, ":", 2)[0]) + ": " + rest
	}
	b.update(func(h *Health) {
		lines := append(strings.Split(h.LastError, " / "), line)
		if h.LastError == "" {
			lines = lines[1:]
		}
		h.LastError = strings.Join(lines[max(0, len(lines)-3):], " / ")
	})
}
