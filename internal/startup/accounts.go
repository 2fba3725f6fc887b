package startup

import (
	"context"
	"fmt"
	"maps"
	"os/user"
	"slices"
	"strconv"

	"clamgate/internal/config"
	"clamgate/internal/listen"
)

// Accounts are the users and groups a configuration names, as this host
// resolves them. The file keeps names (config is data, checked the same
// on any host); the gateway serves with the ids resolved here at start
// and at each reload.
type Accounts struct {
	users, groups map[string]uint32
}

// Resolve looks up every user and group cfg names: policies' users and
// groups, unix sockets' owner and group. A number is an id as it stands.
// Each name the host does not know is an error at its key; the rest are
// resolved all the same.
func Resolve(cfg *config.Config) (*Accounts, []error) {
	a := &Accounts{users: map[string]uint32{}, groups: map[string]uint32{}}
	var errs []error
	add := func(key, kind string, names ...string) {
		for _, n := range names {
			if n == "" {
				continue
			}
			id, err := lookup(kind, n)
			if err != nil {
				errs = append(errs, cfg.ErrorAt(key, "%v", err))
				continue
			}
			a.ids(kind)[n] = id
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Policies)) {
		p := cfg.Policies[name]
		add("policy."+name+".users", "user", p.Users...)
		add("policy."+name+".groups", "group", p.Groups...)
	}
	for i, l := range cfg.Listeners {
		add(fmt.Sprintf("listener[%d].owner", i), "user", l.Owner)
		add(fmt.Sprintf("listener[%d].group", i), "group", l.Group)
	}
	return a, errs
}

func (a *Accounts) ids(kind string) map[string]uint32 {
	if kind == "user" {
		return a.users
	}
	return a.groups
}

func lookup(kind, name string) (uint32, error) {
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(id), nil
	}
	var id string
	if kind == "user" {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, fmt.Errorf("unknown user %q", name)
		}
		id = u.Uid
	} else {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, fmt.Errorf("unknown group %q", name)
		}
		id = g.Gid
	}
	n, err := strconv.ParseUint(id, 10, 32)
	return uint32(n), err
}

// UIDs and GIDs are the ids of names, the unknown ones left out (Resolve
// reported them).
func (a *Accounts) UIDs(names []string) []uint32 { return a.list(a.users, names) }
func (a *Accounts) GIDs(names []string) []uint32 { return a.list(a.groups, names) }

func (a *Accounts) list(ids map[string]uint32, names []string) []uint32 {
	var out []uint32
	for _, n := range names {
		if id, ok := ids[n]; ok {
			out = append(out, id)
		}
	}
	return out
}

// Spec is the socket a listener binds: its owner and group resolved, -1
// (the gateway's own) when unset or unknown.
func (a *Accounts) Spec(l config.Listener) listen.Spec {
	s := listen.Spec{Address: l.Address, Mode: l.Mode, UID: -1, GID: -1, AllowNonLoopback: l.AllowNonLoopback}
	if id, ok := a.users[l.Owner]; ok {
		s.UID = int(id)
	}
	if id, ok := a.groups[l.Group]; ok {
		s.GID = int(id)
	}
	return s
}

// accounts: every user and group the file names exists on this host.
func accounts(_ context.Context, cfg *config.Config) []error {
	_, errs := Resolve(cfg)
	return errs
}
