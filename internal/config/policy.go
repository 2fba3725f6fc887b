package config

import (
	"cmp"
	"path/filepath"
	"slices"
	"time"

	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// Policy is one [policy.NAME] section, validated: what one named client
// may do, as the file says it. The gateway makes the policy.Policy it
// enforces from it (users and groups resolved, roots opened).
type Policy struct {
	Name          string
	Admin         bool
	Commands      []string      // allowed clamd commands
	Roots         []string      // absolute, clean directories path scans may reach
	MaxObject     int64         // bytes; the default filled in
	MaxConcurrent int           // scans at once; 0 = unlimited
	MaxWait       time.Duration // longest wait for the engine; 0 = the default
	MaxQueue      int           // jobs waiting for the engine; 0 = the default
	MaxQueueBytes int64         // bytes of the jobs waiting and spooled
	Weight        int           // share of the engine under contention; 0 = 1
	OnLimits      string        // "block", "error" or "pass"
	// Users and Groups admit unix peers, as written: names or numeric ids
	// (resolved at start: startup.Accounts). Both empty: any peer.
	Users, Groups []string
	// TokensSHA256 are the hashes of the HTTP bearer tokens choosing this
	// policy; Status lets it read the status page.
	TokensSHA256 [][32]byte
	Status       bool
	// TLSIdentities are the client certificates choosing this policy on a
	// TLS listener; AllowAnonymousNetwork serves it beyond loopback
	// without client certificates.
	TLSIdentities         []string
	AllowAnonymousNetwork bool
	// AllowWritableRootAncestors accepts roots below a directory a non-root
	// user can write (see policy.OpenRoot).
	AllowWritableRootAncestors bool
	MaxWalkDepth               int // 0 = policy.DefaultMaxWalkDepth
	MaxDirEntries              int // 0 = policy.DefaultMaxDirEntries
}

// Restricted reports whether the policy admits only some unix peers.
func (p *Policy) Restricted() bool { return len(p.Users) > 0 || len(p.Groups) > 0 }

func (v *validator) walkLimits(key string, ps policySection, p *Policy) {
	p.AllowWritableRootAncestors = ps.AllowWritableRootAncestors
	p.MaxWalkDepth, p.MaxDirEntries = ps.MaxWalkDepth, ps.MaxDirEntries
	if p.MaxWalkDepth < 0 {
		v.fail(key+".max_walk_depth", "must not be negative")
	}
	if p.MaxDirEntries < 0 {
		v.fail(key+".max_dir_entries", "must not be negative")
	}
}

func (v *validator) policy(name string, ps policySection, backendMax, def int64) *Policy {
	key := "policy." + name
	p := &Policy{
		Name: name, Admin: ps.Admin, MaxObject: int64(cmp.Or(ps.MaxObject, ps.MaxStream)), MaxConcurrent: ps.MaxConcurrent, MaxWait: time.Duration(ps.MaxWait),
		MaxQueue: ps.MaxQueue, MaxQueueBytes: int64(ps.MaxQueueBytes), Weight: ps.Weight,
		Commands: ps.Commands, OnLimits: or(ps.OnLimits, "block"),
		Users: ps.Users, Groups: ps.Groups,
	}
	v.oneOf(key+".on_limits", p.OnLimits, "block", "error", "pass")
	v.commands(key, p)
	for _, r := range ps.Roots {
		if !filepath.IsAbs(r) {
			v.fail(key+".roots", "%q is not an absolute path", r)
			continue
		}
		p.Roots = append(p.Roots, filepath.Clean(r))
	}
	v.walkLimits(key, ps, p)
	if ps.MaxStream != 0 {
		v.renamed(key+".max_stream", "policy.NAME.max_stream", key+".max_object")
	}
	v.httpPolicy(key, ps, p)
	v.policyTLS(key, ps, p)
	switch {
	case p.MaxObject == 0:
		p.MaxObject = def
	case p.MaxObject > backendMax:
		v.fail(limitKey(key, ps), "%d bytes is more than clamd accepts (stream_max_length %d)", p.MaxObject, backendMax)
	}
	v.policyLimits(key, p)
	v.names(key+".users", "user", p.Users)
	v.names(key+".groups", "group", p.Groups)
	return p
}

func (v *validator) commands(key string, p *Policy) {
	if p.Commands == nil {
		p.Commands = slices.Clone(policy.DefaultCommands)
	}
	for _, c := range p.Commands {
		switch {
		case slices.Contains(policy.AdminCommands, c) && !p.Admin:
			v.fail(key+".commands", "%s is only allowed in an admin policy (admin = true): it stops or stalls the engine for every client", c)
		case !slices.Contains(policy.DefaultCommands, c) && !slices.Contains(policy.AdminCommands, c):
			v.fail(key+".commands", "%q is not a clamd command", c)
		}
	}
}

func (v *validator) policyLimits(key string, p *Policy) {
	if p.MaxConcurrent < 0 {
		v.fail(key+".max_concurrent", "must not be negative")
	}
	if p.MaxQueue < 0 {
		v.fail(key+".max_queue", "%d: must not be negative (0 or unset: %d jobs)", p.MaxQueue, scan.DefaultMaxQueue)
	}
	if p.Weight < 0 || p.Weight > 100 {
		v.fail(key+".weight", "%d: must be 1..100 (0 or unset: 1)", p.Weight)
	}
}

// names checks the spelling of user or group names only; whether this
// host knows them is for the start-up checks.
func (v *validator) names(key, what string, names []string) {
	for _, n := range names {
		if n == "" {
			v.fail(key, "an empty %s name", what)
		}
	}
}
