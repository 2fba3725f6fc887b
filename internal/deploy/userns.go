package deploy

import (
	"fmt"
	"strconv"
	"strings"
)

// The container engine runs in a user namespace: container ids 0..65535
// are host ids EngineIDBase.., so that the image's clamav (uid 100, gid 101
// upstream; the building host's clamav for a local image) is no host
// account. Without it, uid 100 is messagebus on Debian 12, which then owns
// clamd's socket directory and could serve a fake clamd that answers OK.
// The base sits above systemd-nspawn's --private-users=pick range
// (0x00080000-0x6FFFFFFF) and below its foreign range (0x7FFE0000).
const (
	EngineIDBase  = 0x70000000
	engineIDCount = 65536
)

// HostUID is the uid the engine's clamd has on the host: the unit
// engine's user, or the container's uid through the mapping.
func (e Engine) HostUID() int {
	if e.Kind == KindContainer {
		return EngineIDBase + e.UID
	}
	return e.UID
}

// HostGID is HostUID's group.
func (e Engine) HostGID() int {
	if e.Kind == KindContainer {
		return EngineIDBase + e.GID
	}
	return e.GID
}

// idMap is podman's --uidmap/--gidmap value (and Quadlet's UIDMap/GIDMap).
func idMap() string { return fmt.Sprintf("0:%d:%d", EngineIDBase, engineIDCount) }

// idRangeUsers names what on the host already uses an id of the engine's
// range: accounts (passwd, group) and subordinate ranges (subuid, subgid).
// deploy refuses the container engine while any does.
func (h *Host) idRangeUsers() []string {
	var used []string
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		for _, line := range strings.Split(string(h.read(f)), "\n") {
			p := strings.Split(line, ":")
			if len(p) < 3 {
				continue
			}
			if id, err := strconv.Atoi(p[2]); err == nil && inEngineRange(id, 1) {
				used = append(used, fmt.Sprintf("%s %s (%d)", f, p[0], id))
			}
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		for _, line := range strings.Split(string(h.read(f)), "\n") {
			p := strings.Split(line, ":")
			if len(p) < 3 {
				continue
			}
			start, err1 := strconv.Atoi(p[1])
			n, err2 := strconv.Atoi(p[2])
			if err1 == nil && err2 == nil && inEngineRange(start, n) {
				used = append(used, fmt.Sprintf("%s %s (%d+%d)", f, p[0], start, n))
			}
		}
	}
	return used
}

// inEngineRange: [start, start+n) meets the engine's range.
func inEngineRange(start, n int) bool {
	return start < EngineIDBase+engineIDCount && start+n > EngineIDBase
}
