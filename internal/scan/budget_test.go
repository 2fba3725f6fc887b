package scan

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestSpoolBudget: a client holds at most its share of the spool (its only
// stream excepted while the spool is within half its budget), the whole
// spool at most the budget; refusals are busy,
// releases give the bytes back, the peak stays.
func TestSpoolBudget(t *testing.T) {
	b := NewSpoolBudget(1000, func(c string) int64 {
		if c == "mail" {
			return 300
		}
		return 0 // half the budget
	})
	att1, att2 := b.Reserve("attacker"), b.Reserve("attacker")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	busy := func(err error, want string) {
		t.Helper()
		if !IsBusy(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("want busy naming %q, got %v", want, err)
		}
	}
	must(att1.Grow(400))
	must(att2.Grow(100))
	busy(att2.Grow(1), "half of server.spool_budget = 500")
	busy(att1.Grow(100), "half of server.spool_budget")
	att2.Release()
	must(att1.Grow(100))                              // its share, whole
	busy(att1.Grow(1), "half of server.spool_budget") // its only stream, past its share and half the budget
	m1, m2 := b.Reserve("mail"), b.Reserve("mail")
	must(m1.Grow(200))
	busy(m2.Grow(200), "policy.mail.max_queue_bytes = 300")
	must(m2.Grow(100))
	other := b.Reserve("web")
	busy(other.Grow(300), "server.spool_budget = 1000") // 800 held
	if b.Used() != 800 || b.Peak() != 800 {
		t.Fatalf("used %d peak %d, want 800 800", b.Used(), b.Peak())
	}
	m2.Release()
	busy(m1.Grow(150), "policy.mail.max_queue_bytes = 300") // its only stream, but the spool is past half
	att1.Release()
	att2.Release()
	must(m1.Grow(150)) // its only stream past its share, within half the budget
	must(other.Grow(200))
	m1.Release()
	other.Release()
	if b.Used() != 0 || b.Peak() != 800 {
		t.Fatalf("after release: used %d peak %d, want 0 800", b.Used(), b.Peak())
	}
}

// TestSpoolRefusal: a stream past the budget is refused as busy while it is
// read, its bytes given back, and the dispatcher never calls clamd.
func TestSpoolRefusal(t *testing.T) {
	b := newGateBackend()
	d := NewDispatcher(b, slog.New(slog.DiscardHandler), Options{Capacity: 1, SpoolBudget: 1 << 20})
	_, err := d.Do(t.Context(), Job{Client: "x", Kind: Stream, Data: bytes.NewReader(make([]byte, 2<<20))})
	var busy *BusyError
	if !errors.As(err, &busy) || d.Spool().Used() != 0 {
		t.Fatalf("err %v, %d bytes still reserved", err, d.Spool().Used())
	}
}
