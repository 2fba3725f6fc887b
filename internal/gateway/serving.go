package gateway

import (
	"errors"
	"slices"

	"clamgate/internal/config"
	"clamgate/internal/listen"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
	"clamgate/internal/startup"
)

// serving is a configuration as the gateway serves it. config holds names
// and values only; here the host's users and groups are resolved
// (startup.Resolve, as the start-up checks do) and the policies the fronts
// enforce, the sockets and the dispatcher's options are made from them.
// Each start and each reload makes a new one: the policies it holds get
// their roots opened (rootKeeper) and are never changed afterwards.
type serving struct {
	cfg      *config.Config
	policies map[string]*policy.Policy
	accounts *startup.Accounts
}

// newServing fails, naming file:line: key:, when the host does not know a
// user or group the file names (a reload then leaves the running
// configuration in force, as for any error of the file).
func newServing(cfg *config.Config) (*serving, error) {
	ids, errs := startup.Resolve(cfg)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &serving{cfg: cfg, accounts: ids, policies: map[string]*policy.Policy{}}
	for name, p := range cfg.Policies {
		s.policies[name] = newPolicy(p, ids)
	}
	return s, nil
}

// newPolicy is the policy a front enforces for p. Its lists are its own,
// so that nothing the configuration does later reaches a served policy.
func newPolicy(p *config.Policy, ids *startup.Accounts) *policy.Policy {
	return &policy.Policy{
		Name: p.Name, Admin: p.Admin, Commands: slices.Clone(p.Commands), Roots: slices.Clone(p.Roots),
		MaxStream: p.MaxObject, MaxConcurrent: p.MaxConcurrent, MaxWait: p.MaxWait, MaxQueue: p.MaxQueue,
		MaxQueueBytes: p.MaxQueueBytes, Weight: p.Weight, OnLimits: p.OnLimits,
		UIDs: ids.UIDs(p.Users), GIDs: ids.GIDs(p.Groups),
		TokensSHA256: slices.Clone(p.TokensSHA256), Status: p.Status,
		TLSIdentities: slices.Clone(p.TLSIdentities), AllowAnonymousNetwork: p.AllowAnonymousNetwork,
		AllowWritableRootAncestors: p.AllowWritableRootAncestors,
		MaxWalkDepth:               p.MaxWalkDepth, MaxDirEntries: p.MaxDirEntries,
	}
}

// policiesFor returns every policy a listener serves, its first (Policy)
// first.
func (s *serving) policiesFor(l config.Listener) []*policy.Policy {
	var out []*policy.Policy
	for _, p := range s.cfg.PoliciesFor(l) {
		out = append(out, s.policies[p.Name])
	}
	return out
}

// spec is the socket l binds, its owner and group resolved.
func (s *serving) spec(l config.Listener) listen.Spec { return s.accounts.Spec(l) }

// dispatchOptions are the dispatcher's settings; Run adds what it
// measures and wires (the spool budget, observers, the cache).
func (s *serving) dispatchOptions() scan.Options {
	c := s.cfg
	return scan.Options{Capacity: c.ScanSlots(), Reserve: c.Reserve, BulkCap: c.BulkCap, BulkSize: c.BulkSize,
		SpoolDir: c.SpoolDir, SpoolBudget: c.SpoolBudget, Limits: limits(c)}
}

// limits are each policy's limits, which the dispatcher applies by the
// client's name.
func limits(c *config.Config) map[string]scan.ClientLimits {
	out := map[string]scan.ClientLimits{}
	for name, p := range c.Policies {
		out[name] = scan.ClientLimits{Concurrent: p.MaxConcurrent, MaxWait: p.MaxWait, MaxQueue: p.MaxQueue,
			MaxQueueBytes: p.MaxQueueBytes, Weight: p.Weight, OnLimits: p.OnLimits}
	}
	return out
}
