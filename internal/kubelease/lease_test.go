package kubelease_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"clamgate/internal/kubelease"
	"clamgate/internal/testenv"
)

// These run against testenv's stand-in for the Lease API (resourceVersion
// preconditions, 409 on a stale update, bearer token, TLS), which can
// fail on demand; lease_kube_test.go checks the same turn-taking against a
// real kube-apiserver (scripts/kube-apiserver.sh).

func newLease(t *testing.T, api *testenv.LeaseAPI, name, holder string, d time.Duration) *kubelease.Lease {
	t.Helper()
	l, err := kubelease.New(kubelease.Config{API: api.URL, Credentials: api.Credentials, Name: name, Holder: holder,
		Duration: d, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLeaseTakesTurns: pods that all want the lease at once get it one
// after another, never two at a time, renewing while they hold it; the
// lease ends with no holder.
func TestLeaseTakesTurns(t *testing.T) {
	api := testenv.StartLeaseAPI(t)
	takeTurns(t, func(holder string) *kubelease.Lease { return newLease(t, api, "turns", holder, 3*time.Second) },
		func() string { return api.Holder("turns") })
	if api.Holder("turns") != "" {
		t.Errorf("holder at the end %q", api.Holder("turns"))
	}
	if api.Requests[http.MethodPut] < 4*2 {
		t.Errorf("PUTs %d: each pod takes, renews at least once and gives back", api.Requests[http.MethodPut])
	}
}

// takeTurns has four pods want the lease at once, each holding it past a
// renewal, and fails the test if two held it at a time; holder is who the
// API says holds it.
func takeTurns(t *testing.T, lease func(holder string) *kubelease.Lease, holder func() string) {
	type span struct {
		holder   string
		from, to time.Time
	}
	var mu sync.Mutex
	var spans []span
	var wg sync.WaitGroup
	for i := range 4 {
		l := lease(fmt.Sprintf("pod-%d", i))
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			release, err := l.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			from := time.Now()
			if h := holder(); h != l.Holder() {
				t.Errorf("%s was told it holds the lease; the API says %q", l.Holder(), h)
			}
			time.Sleep(1200 * time.Millisecond) // past a renewal (every second)
			to := time.Now()
			release()
			mu.Lock()
			spans = append(spans, span{l.Holder(), from, to})
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	for i := 1; i < len(spans); i++ {
		if spans[i].from.Before(spans[i-1].to) {
			t.Errorf("%s held the lease from %s while %s held it until %s", spans[i].holder, spans[i].from.Format(time.StampMicro),
				spans[i-1].holder, spans[i-1].to.Format(time.StampMicro))
		}
	}
	if len(spans) != 4 {
		t.Fatalf("%d of 4 pods had the lease", len(spans))
	}
}

// TestLeaseTakeOver: a holder that stops renewing (its pod died) loses
// the lease once another pod has seen it unchanged for its duration; one
// that renews keeps it, and the waiting pod's bounded wait ends with an
// error naming the holder.
func TestLeaseTakeOver(t *testing.T) {
	api := testenv.StartLeaseAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	api.Plant("takeover", "pod-a", 2) // pod-a died holding a 2 s lease
	start := time.Now()
	releaseB, err := newLease(t, api, "takeover", "pod-b", 3*time.Second).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("took the dead pod's lease after %v, before its 2 s", took)
	}
	t.Logf("pod-b took the lease after %v", time.Since(start).Round(time.Millisecond))
	waitCtx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	_, err = newLease(t, api, "takeover", "pod-c", 3*time.Second).Acquire(waitCtx)
	if err == nil || !strings.Contains(err.Error(), `held by "pod-b"`) {
		t.Errorf("pod-c's wait on a renewed lease: %v", err)
	}
	releaseB()
}

// TestLeaseAPIDown: while the API fails, the wait ends at its bound with
// the API's answer; once it answers again, the lease is taken.
func TestLeaseAPIDown(t *testing.T) {
	api := testenv.StartLeaseAPI(t)
	api.SetDown(true)
	l := newLease(t, api, "down", "pod-a", 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(ctx); err == nil {
		t.Fatal("took the lease from an API that fails")
	}
	api.SetDown(false)
	release, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()
}
