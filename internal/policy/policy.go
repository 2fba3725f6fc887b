// Package policy decides what one named client may do: which peers may use
// its listener, which clamd commands it may send, which paths it may have
// scanned, and how much it may stream and run at once.
package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// AdminCommands are forwarded only for policies marked admin, because any of
// them stops or stalls scanning for every other client of the engine.
var AdminCommands = []string{"RELOAD", "SHUTDOWN", "QUIT", "DETSTATSCLEAR"}

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
	MaxQueueBytes int64         // bytes of the jobs waiting for the engine; 0 = no limit
	Weight        int           // share of the engine under contention; 0 = 1
	UIDs          []uint32      // unix peers allowed by uid (empty with GIDs empty: any)
	GIDs          []uint32      // unix peers allowed by primary or supplementary group
}

// Peer is what the gateway knows of a connected client.
type Peer struct {
	Listener string
	Remote   string
	HasCreds bool // SO_PEERCRED was read (unix sockets)
	UID, GID uint32
	PID      int32
	Groups   []uint32 // supplementary groups; nil: read from /proc when a policy needs them
}

func (p Peer) String() string {
	if !p.HasCreds {
		return fmt.Sprintf("%s from %s", p.Listener, p.Remote)
	}
	return fmt.Sprintf("%s uid=%d gid=%d pid=%d", p.Listener, p.UID, p.GID, p.PID)
}

// PeerGroups reads the supplementary groups of a running process. They are
// what the kernel checks on open(2), which is not always /etc/group: amavisd
// drops its supplementary groups at start (the reference article's trap #1).
func PeerGroups(pid int32) []uint32 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		var gids []uint32
		for _, f := range strings.Fields(rest) {
			if g, err := strconv.ParseUint(f, 10, 32); err == nil {
				gids = append(gids, uint32(g))
			}
		}
		return gids
	}
	return nil
}

// AllowPeer checks a unix peer against the policy's users and groups.
// Peers without credentials (TCP) are admitted by their listener alone.
func (p *Policy) AllowPeer(peer Peer) error {
	if !peer.HasCreds || (len(p.UIDs) == 0 && len(p.GIDs) == 0) {
		return nil
	}
	if slices.Contains(p.UIDs, peer.UID) || slices.Contains(p.GIDs, peer.GID) {
		return nil
	}
	groups := peer.Groups
	if groups == nil && peer.PID > 0 && len(p.GIDs) > 0 {
		// Read only when needed: it costs a /proc read per connection.
		groups = PeerGroups(peer.PID)
	}
	for _, g := range groups {
		if slices.Contains(p.GIDs, g) {
			return nil
		}
	}
	return fmt.Errorf("uid %d, gid %d not allowed by client policy %q", peer.UID, peer.GID, p.Name)
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

// RootFor returns the allowed root that lexically contains path, and path
// relative to it. The real confinement happens when opening (openat2
// RESOLVE_BENEATH); this only picks the root to open beneath.
func (p *Policy) RootFor(path string) (root, rel string, ok bool) {
	if !filepath.IsAbs(path) {
		return "", "", false
	}
	clean := filepath.Clean(path)
	for _, r := range p.Roots {
		if clean == r {
			return r, ".", true
		}
		if rest, found := strings.CutPrefix(clean, r); found && (strings.HasPrefix(rest, "/") || r == "/") {
			return r, strings.TrimPrefix(rest, "/"), true
		}
	}
	return "", "", false
}
