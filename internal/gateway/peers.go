package gateway

import (
	"sync"

	"clamgate/internal/policy"
)

// uidSlots counts the connections each unix peer uid holds on one
// listener, so that no single user can take all of its connections.
// Peers without credentials (TCP) are bounded by the listener alone.
type uidSlots struct {
	max  int
	mu   sync.Mutex
	held map[uint32]int
}

func newUIDSlots(max int) *uidSlots { return &uidSlots{max: max, held: map[uint32]int{}} }

// take reserves a connection for peer; false when its uid is at the bound.
func (u *uidSlots) take(peer policy.Peer) bool {
	if !peer.HasCreds || u.max <= 0 {
		return true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.held[peer.UID] >= u.max {
		return false
	}
	u.held[peer.UID]++
	return true
}

func (u *uidSlots) release(peer policy.Peer) {
	if !peer.HasCreds || u.max <= 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.held[peer.UID]--; u.held[peer.UID] <= 0 {
		delete(u.held, peer.UID)
	}
}
