package gateway

import (
	"log/slog"
	"sync"

	"clamgate/internal/policy"
)

// rootKeeper holds the policies whose roots are open. A request never opens
// a root by its path: roots are opened at start, and again for the new
// policies of a reload (which re-checks their ancestors), so renaming a root
// away changes nothing for the running gateway.
type rootKeeper struct {
	mu   sync.Mutex
	held map[*policy.Policy]bool
}

// open opens every policy's roots of sv; on error, none of them stay open.
func (k *rootKeeper) open(sv *serving, log *slog.Logger) error {
	if warning := policy.HardlinkWarning(); warning != "" && pathScans(sv.cfg) {
		log.Warn(warning)
	}
	var opened []*policy.Policy
	for _, p := range sv.policies {
		if err := p.OpenRoots(); err != nil {
			for _, q := range opened {
				q.CloseRoots()
			}
			return err
		}
		opened = append(opened, p)
		for _, r := range p.OpenedRoots() {
			if r.Writable != "" {
				log.Warn("root below a directory another user can write, accepted by allow_writable_root_ancestors", "policy", p.Name, "root", r.Path, "why", r.Writable)
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.held == nil {
		k.held = map[*policy.Policy]bool{}
	}
	for _, p := range opened {
		k.held[p] = true
	}
	return nil
}

// forget closes the roots of sv's policies, opened for a reload that was
// refused.
func (k *rootKeeper) forget(sv *serving) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range sv.policies {
		if k.held[p] {
			p.CloseRoots()
			delete(k.held, p)
		}
	}
}

// unused lists the held policies that no listener serves, as a reload
// leaves them: the ones it retired, and its own that kept listeners did not
// take. The list is fixed now, so that closing it later cannot touch what a
// later reload opens.
func (k *rootKeeper) unused(inUse map[*policy.Policy]bool) []*policy.Policy {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*policy.Policy
	for p := range k.held {
		if !inUse[p] {
			out = append(out, p)
		}
	}
	return out
}

// close closes the roots of ps. A request of a retired connection still on
// such a root then fails closed (Root.Open refuses once closed: an ERROR,
// never OK); the reloader waits the shutdown grace first.
func (k *rootKeeper) close(ps []*policy.Policy) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range ps {
		if k.held[p] {
			p.CloseRoots()
			delete(k.held, p)
		}
	}
}

func (k *rootKeeper) closeAll() { k.close(k.unused(nil)) }
