// Package policy decides what one named client may do: which peers may use
// its listener, which clamd commands it may send, which paths it may have
// scanned, and how much it may stream and run at once.
package policy

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Commands a policy allows when it does not list its own: everything a
// scanning client needs, nothing that changes the shared engine.
var DefaultCommands = []string{
	"PING", "VERSION", "VERSIONCOMMANDS", "SCAN", "CONTSCAN", "MULTISCAN",
	"ALLMATCHSCAN", "INSTREAM", "FILDES", "STATS", "IDSESSION", "END",
	"DETSTATS",
}

// AdminCommands are served only for policies marked admin, because any of
// them stops or stalls scanning for every other client of the engine
// (SELFCHECK starts a reload when the database changed).
var AdminCommands = []string{"RELOAD", "SHUTDOWN", "QUIT", "DETSTATSCLEAR", "SELFCHECK"}

// Policy is one client's rights and limits.
type Policy struct {
	Name          string
	Admin         bool
	Commands      []string      // allowed clamd commands
	Roots         []string      // absolute, clean directories path scans may reach
	MaxStream     int64         // bytes; 0 = clamd's own limit only
	MaxConcurrent int           // scans at once; 0 = unlimited
	MaxWait       time.Duration // longest wait for the engine (queue, reload); 0 = the default
	MaxQueue      int           // jobs waiting for the engine; 0 = the default
	MaxQueueBytes int64         // bytes of the jobs waiting for the engine (0 = no limit) and spooled (0 = half the budget)
	Weight        int           // share of the engine under contention; 0 = 1
	OnLimits      string        // an object past clamd's scan limits: "block", "error" or "pass"
	UIDs          []uint32      // unix peers allowed by uid (empty with GIDs empty: any)
	GIDs          []uint32      // unix peers allowed by primary or supplementary group
	// TokensSHA256 are the SHA-256 hashes of the bearer tokens that choose
	// this policy on an HTTP listener; Status lets it read the status page.
	TokensSHA256 [][32]byte
	Status       bool
	// TLSIdentities are the client certificates a TLS listener serves with
	// this policy ("dns:NAME", "uri:URI" or "uri:PREFIX*", "cn:NAME").
	TLSIdentities []string
	// AllowAnonymousNetwork lets a listener beyond loopback serve this
	// policy without client certificates, by name.
	AllowAnonymousNetwork bool

	// AllowWritableRootAncestors accepts roots below a directory a non-root
	// user can write (see OpenRoot).
	AllowWritableRootAncestors bool
	MaxWalkDepth               int     // directory levels a walk enters; 0 = DefaultMaxWalkDepth
	MaxDirEntries              int     // entries a walk holds at once; 0 = DefaultMaxDirEntries
	open                       []*Root // Roots, held open by OpenRoots
}

// Walk bounds when a policy sets none. Each level of a walk holds one
// directory descriptor; each entry held costs 16 bytes plus its name.
const (
	DefaultMaxWalkDepth  = 64
	DefaultMaxDirEntries = 20000
)

// Peer is what the gateway knows of a connected client. Whether a policy
// admits it is decided once, by the gateway (internal/identity).
type Peer struct {
	Listener string
	Remote   string
	HasCreds bool // SO_PEERCRED was read (unix sockets)
	UID, GID uint32
	PID      int32
	Groups   []uint32 // supplementary groups, as the kernel reported them on connect
	// Cert names a TLS client by its verified certificate ("dns:mx1…",
	// "uri:spiffe://…", "cn:…"); "" for any other client.
	Cert string
}

func (p Peer) String() string {
	if p.Cert != "" {
		return fmt.Sprintf("%s from %s cert=%s", p.Listener, p.Remote, p.Cert)
	}
	if !p.HasCreds {
		return fmt.Sprintf("%s from %s", p.Listener, p.Remote)
	}
	return fmt.Sprintf("%s uid=%d gid=%d pid=%d", p.Listener, p.UID, p.GID, p.PID)
}

// AllowCommand says whether the command may be forwarded for this client.
func (p *Policy) AllowCommand(name string) error {
	if slices.Contains(AdminCommands, name) && !p.Admin {
		return fmt.Errorf("Command %s is not allowed for client %s (admin only)", name, p.Name)
	}
	if !slices.Contains(p.Commands, name) && !(p.Admin && slices.Contains(AdminCommands, name)) {
		return fmt.Errorf("Command %s is not allowed for client %s", name, p.Name)
	}
	return nil
}

// SameRules reports whether q enforces what p does at a front: the limits
// the dispatcher applies by client name (concurrency, queue, wait, weight)
// and the open root descriptors do not count.
func (p *Policy) SameRules(q *Policy) bool {
	x, y := *p, *q
	for _, z := range []*Policy{&x, &y} {
		z.MaxConcurrent, z.MaxQueue, z.MaxWait, z.Weight, z.open = 0, 0, 0, 0, nil
	}
	return reflect.DeepEqual(x, y)
}

// OpenRoots opens the policy's roots, once, for the gateway's life.
func (p *Policy) OpenRoots() error {
	for _, dir := range p.Roots {
		r, err := OpenRoot(dir, p.AllowWritableRootAncestors)
		if err != nil {
			p.CloseRoots()
			p.open = nil // never served: nothing reads the list yet
			return fmt.Errorf("client policy %s: %w", p.Name, err)
		}
		p.open = append(p.open, r)
	}
	return nil
}

// OpenedRoots are the roots OpenRoots opened.
func (p *Policy) OpenedRoots() []*Root { return p.open }

// CloseRoots releases what OpenRoots opened.
// The list itself stays: requests of retired connections may still read
// it, and each root refuses opens once closed.
func (p *Policy) CloseRoots() {
	for _, r := range p.open {
		r.Close()
	}
}

// Limit is the largest object a front scans for this policy, given the
// front's own (deprecated) cap: the policy's max_object, or the cap when
// it is set and smaller.
func (p *Policy) Limit(frontCap int64) int64 {
	if frontCap == 0 || frontCap > p.MaxStream {
		return p.MaxStream
	}
	return frontCap
}

// WalkLimits are the policy's bounds on one directory walk.
func (p *Policy) WalkLimits() (depth, entries int) {
	depth, entries = p.MaxWalkDepth, p.MaxDirEntries
	if depth <= 0 {
		depth = DefaultMaxWalkDepth
	}
	if entries <= 0 {
		entries = DefaultMaxDirEntries
	}
	return depth, entries
}

// RootFor returns the open root that path names, and the rest of path
// relative to it, for the kernel to resolve from the root's descriptor.
// The text only picks one of the client's roots and may refuse: a path
// that does not, cleaned, stay under the root is not this client's, as
// in clamd's own view of it. The rest is not cleaned: ".." after a
// symlink must mean what the kernel makes of it.
func (p *Policy) RootFor(name string) (root *Root, rel string, ok bool) {
	if !filepath.IsAbs(name) {
		return nil, "", false
	}
	clean, parts := filepath.Clean(name), split(name)
	for _, r := range p.open {
		if !within(clean, r.Path) {
			continue
		}
		rootParts := split(r.Path)
		if len(parts) < len(rootParts) || !slices.Equal(parts[:len(rootParts)], rootParts) {
			continue
		}
		rel = strings.Join(parts[len(rootParts):], "/")
		if rel == "" {
			rel = "."
		}
		return r, rel, true
	}
	return nil, "", false
}

// within says whether the clean path is dir or lies beneath it.
func within(clean, dir string) bool {
	rest, found := strings.CutPrefix(clean, dir)
	return found && (rest == "" || strings.HasPrefix(rest, "/") || dir == "/")
}

// CheckTLSIdentity validates one tls_identities entry; whether a
// certificate matches it is internal/identity's decision.
func CheckTLSIdentity(p string) error {
	kind, name, _ := strings.Cut(p, ":")
	switch {
	case name == "":
		return fmt.Errorf("%q: want dns:NAME, uri:URI (a trailing * matches a path prefix) or cn:NAME", p)
	case kind == "uri":
		return nil
	case (kind == "dns" || kind == "cn") && !strings.Contains(name, "*"):
		return nil
	}
	return fmt.Errorf("%q: want dns:NAME, uri:URI (a trailing * matches a path prefix) or cn:NAME", p)
}
