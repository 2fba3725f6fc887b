package scan

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
)

// TestReconfigure: new weights decide the order of jobs already waiting
// (jobs of one quantum each: weight 3 is three jobs per turn),
// and a larger capacity starts waiting jobs at once, while the job that
// was running goes on untouched.
func TestReconfigure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newGateBackend()
		q := &queueWatch{deepest: map[string]int{}}
		d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 1, BulkSize: 100, Observers: []Observer{q}})
		d.Reconfigure(Options{Capacity: 1}) // before any client: nothing to dispatch
		var wg sync.WaitGroup
		submit(d, &wg, "first", nil)
		waitRunning(t, b, 1)
		<-b.order
		for range 4 {
			submitSized(d, &wg, "proxy", 100, nil)
		}
		q.wait(t, "proxy", 4)
		for range 4 {
			submitSized(d, &wg, "mail", 100, nil)
		}
		q.wait(t, "mail", 4)
		d.Reconfigure(Options{Capacity: 1, Limits: map[string]ClientLimits{"mail": {Weight: 3}}})
		var got []string
		for range 4 {
			b.release <- struct{}{}
			got = append(got, <-b.order)
		}
		if want := "proxy mail mail mail"; strings.Join(got, " ") != want {
			t.Fatalf("order after reweighting %v, want %s", got, want)
		}
		d.Reconfigure(Options{Capacity: 3, Limits: map[string]ClientLimits{"mail": {Weight: 3}}})
		waitRunning(t, b, 3)
		for range 5 {
			b.release <- struct{}{}
		}
		wg.Wait()
	})
}
