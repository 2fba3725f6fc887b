package doctor

import (
	"context"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"clamgate/internal/addr"
)

func listenersCheck() check {
	return check{
		id:       "listeners",
		title:    "clamd, ICAP and milter listeners are loopback or unix only",
		expected: "loopback or unix only",
		source:   "A clamd, ICAP or milter port on a public address lets any host on the network scan through, stop or reload the engine: clamd has no access control. docs/doctor.md#listeners",
		run:      checkListeners,
	}
}

// listenerScan collects, per network namespace, the listening sockets and
// which clamd-family process owns each (by socket inode).
type listenerScan struct {
	h      *host
	hostNS string
	tables map[string]netTable
	owners map[string]map[uint64]*process
}

func checkListeners(_ context.Context, h *host) verdict {
	ls := scanListeners(h)
	ports, authenticated := listenerPorts(h.env), tlsPorts(h.env)
	v := verdict{status: Pass, fix: "bind to 127.0.0.1 (clamd.conf TCPAddr 127.0.0.1, Quadlet PublishPort=127.0.0.1:3310:3310) or serve a unix socket only"}
	var items []string
	for _, ns := range ls.namespaces() {
		t := ls.tables[ns]
		for _, s := range t.tcp {
			owner := ls.owners[ns][s.Inode]
			if owner == nil && (ns != ls.hostNS || !ports[s.Port]) {
				continue
			}
			st, note := ls.judge(ns, s)
			if st != Pass && ns == ls.hostNS && authenticated[s.Port] {
				st, note = Pass, ", TLS with client certificates"
			}
			v.status = worse(v.status, st)
			items = append(items, s.String()+" ("+ls.ownerName(owner, s)+note+")")
		}
		for _, s := range t.unix {
			if owner := ls.owners[ns][s.Inode]; owner != nil {
				items = append(items, s.String()+" ("+owner.who()+")")
			}
		}
	}
	if len(items) == 0 {
		return pass("no clamd, ICAP or milter listener found")
	}
	v.measured = strings.Join(items, "; ")
	return v
}

func scanListeners(h *host) *listenerScan {
	ls := &listenerScan{h: h, hostNS: h.hostNetNS(), tables: map[string]netTable{}, owners: map[string]map[uint64]*process{}}
	ls.tables[ls.hostNS] = readNetTable(h.env.proc("net"))
	for _, p := range h.named(isScanFamily) {
		ns := p.NetNS
		if ns == "" {
			ns = ls.hostNS
		}
		if _, ok := ls.tables[ns]; !ok {
			ls.tables[ns] = readNetTable(h.env.proc(strconv.Itoa(p.PID), "net"))
		}
		if ls.owners[ns] == nil {
			ls.owners[ns] = map[uint64]*process{}
		}
		for _, ino := range h.socketInodes(p.PID) {
			ls.owners[ns][ino] = p
		}
	}
	return ls
}

// namespaces puts the host's first, so that the row reads from the outside in.
func (ls *listenerScan) namespaces() []string {
	var out []string
	for ns := range ls.tables {
		if ns != ls.hostNS {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return append([]string{ls.hostNS}, out...)
}

// judge: a wildcard inside a namespace that has only lo is loopback in
// effect; inside a namespace with other interfaces it is reachable from
// that network only, which is acceptable on an internal network.
func (ls *listenerScan) judge(ns string, s sock) (Status, string) {
	switch {
	case s.IP.IsLoopback():
		return Pass, ""
	case ns != ls.hostNS && ls.tables[ns].loOnly:
		return Pass, ", own network namespace with only lo"
	case ns != ls.hostNS:
		return Warn, ", own network namespace: reachable from its network"
	}
	return Fail, ", NOT loopback"
}

// ownerName finds the owner of a port-matched socket among every process
// when it is not a clamd-family one (a proxy forwarding the port, say).
func (ls *listenerScan) ownerName(owner *process, s sock) string {
	if owner != nil {
		return owner.who()
	}
	for _, p := range ls.h.processes() {
		if slices.Contains(ls.h.socketInodes(p.PID), s.Inode) {
			return p.who()
		}
	}
	return "owner unknown"
}

// listenerPorts are the default clamd/ICAP/milter ports and the TCP ports
// of the gateway's own listeners.
func listenerPorts(env *Env) map[int]bool {
	ports := map[int]bool{}
	for _, p := range env.Ports {
		ports[p] = true
	}
	if env.Config == nil {
		return ports
	}
	for _, l := range env.Config.Listeners {
		a, err := addr.Parse(l.Address)
		if err != nil || a.Network == addr.Unix {
			continue
		}
		if _, port, err := net.SplitHostPort(a.Address); err == nil {
			if n, err := strconv.Atoi(port); err == nil {
				ports[n] = true
			}
		}
	}
	return ports
}
