package scan

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// SpoolBudget bounds the bytes every spool file holds at once, gateway-wide
// and per client. A stream is read whole before it asks for an engine slot,
// so without it the only bound is connections x max_stream, on a disk the
// gateway shares: one client streaming into every connection it may open
// fills it, and every other client's spool fails.
//
// Bytes are reserved before they are written, a chunk at a time, with two
// atomic adds; the client's account is looked up once per stream.
type SpoolBudget struct {
	total int64 // bytes; 0 = no gateway-wide bound
	used  atomic.Int64
	peak  atomic.Int64
	share func(client string) int64 // the client's bound; 0 = none

	mu      sync.Mutex
	clients map[string]*atomic.Int64
}

// NewSpoolBudget bounds the spool at total bytes (0 = no bound); share
// gives a client's own bound (0 = total/2).
func NewSpoolBudget(total int64, share func(client string) int64) *SpoolBudget {
	return &SpoolBudget{total: total, share: share, clients: map[string]*atomic.Int64{}}
}

// Total is the budget, 0 when there is none.
func (b *SpoolBudget) Total() int64 { return b.total }

// Used is what the spool files hold now.
func (b *SpoolBudget) Used() int64 { return b.used.Load() }

// Peak is the most they have held at once since the start.
func (b *SpoolBudget) Peak() int64 { return b.peak.Load() }

// Reserve opens a client's account for one spool file. A nil budget gives
// a reservation that bounds nothing; so does a nil *Reservation.
func (b *SpoolBudget) Reserve(client string) *Reservation {
	if b == nil {
		return &Reservation{}
	}
	share, key := int64(0), "policy."+client+".max_queue_bytes"
	if b.share != nil {
		share = b.share(client)
	}
	if share <= 0 {
		share, key = b.total/2, "half of server.spool_budget"
	}
	b.mu.Lock()
	acct := b.clients[client]
	if acct == nil {
		acct = new(atomic.Int64)
		b.clients[client] = acct
	}
	b.mu.Unlock()
	return &Reservation{b: b, acct: acct, share: share, shareKey: key}
}

// Reservation is what one spool file holds of its client's share.
type Reservation struct {
	b        *SpoolBudget
	acct     *atomic.Int64
	share    int64  // 0 = no bound of the client's own
	shareKey string // where share comes from, for the refusal
	held     int64
}

// Grow reserves n more bytes before they are written, or refuses them with
// a *BusyError: the whole spool is at its budget, or the client holds its
// share in other spool files (a client's only file may pass its share, as
// its only job always fits max_queue_bytes, within half the budget).
func (r *Reservation) Grow(n int64) error {
	if r == nil || r.b == nil {
		return nil
	}
	mine := r.acct.Add(n)
	// Past its share, a client's only file may go on (its one object
	// always fits, as its only job fits max_queue_bytes), but only into
	// the budget's first half: the other half stays for other clients,
	// whatever one client's stream grows to.
	if r.share > 0 && mine > r.share && (mine-r.held-n > 0 || r.b.total > 0 && r.b.used.Load()+n > r.b.total/2) {
		r.acct.Add(-n)
		return &BusyError{Reason: fmt.Sprintf("%d bytes of the client's streams already spooled, %d more do not fit (%s = %d)",
			mine-n, n, r.shareKey, r.share)}
	}
	all := r.b.used.Add(n)
	if r.b.total > 0 && all > r.b.total {
		r.acct.Add(-n)
		r.b.used.Add(-n)
		return &BusyError{Reason: fmt.Sprintf("the spool holds %d bytes, %d more do not fit (server.spool_budget = %d)", all-n, n, r.b.total)}
	}
	r.held += n
	for p := r.b.peak.Load(); all > p && !r.b.peak.CompareAndSwap(p, all); p = r.b.peak.Load() {
	}
	return nil
}

// Release gives back everything reserved; the file is closed.
func (r *Reservation) Release() {
	if r == nil || r.b == nil || r.held == 0 {
		return
	}
	r.acct.Add(-r.held)
	r.b.used.Add(-r.held)
	r.held = 0
}

// DefaultSpoolBudget is half the space free for unprivileged users on the
// file systems of dirs ("" = $TMPDIR) at start, the smallest of them: the
// other half stays for the rest of the host. 0 when none can be measured.
func DefaultSpoolBudget(dirs ...string) int64 {
	var budget int64
	for _, dir := range dirs {
		if dir == "" {
			dir = os.TempDir()
		}
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) != nil {
			continue
		}
		free := int64(st.Bavail) * st.Bsize / 2
		if budget == 0 || free < budget {
			budget = free
		}
	}
	return budget
}
