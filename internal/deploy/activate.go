package deploy

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"slices"
)

// Activation is what puts an applied plan into service on the running
// host, in order; apply prints it, and `apply --activate` runs it.
func Activation(p *Plan) [][]string {
	users := SysusersConf
	if p.Host.HasSysusers {
		users = PackagedSysusers
	}
	s := [][]string{{"systemd-sysusers", users}, {"systemd-tmpfiles", "--create", TmpfilesConf}, {"systemctl", "daemon-reload"}}
	if len(p.Host.Units) > 0 {
		stop := []string{"systemctl", "stop"}
		for _, u := range p.Host.Units {
			stop = append(stop, u.Name)
		}
		s = append(s, stop)
	}
	if p.Engine.Kind == KindUnit && p.Host.AppArmorClamd != "" {
		// The unit engine's lines in the clamd profile's local include.
		s = append(s, []string{"sh", "-c", "! aa-enabled -q 2>/dev/null || apparmor_parser -r " + AppArmorProfile})
	}
	var engine []string // the engine's unit: an edge has none
	if p.Edge == nil {
		engine = []string{"clamgate-clamd.service"}
	}
	if !p.Socket {
		return append(append(s, slices.Concat([]string{"systemctl", "enable", "--now"}, engine, []string{"clamgate.service"})), reloadClients(p.Host)...)
	}
	if engine != nil {
		s = append(s, slices.Concat([]string{"systemctl", "enable", "--now"}, engine))
	}
	// Restarting clamgate.socket stops a running gateway first (it
	// requires the socket), so that systemd binds the new set of sockets
	// in the gateway's place: a running socket unit keeps its old ones,
	// and binding over a path the gateway still serves would take the
	// path from it. A first apply merely starts it.
	s = append(s, []string{"systemctl", "enable", "clamgate.service"},
		[]string{"systemctl", "restart", "clamgate.socket"},
		[]string{"systemctl", "start", "clamgate.service"})
	return append(s, reloadClients(p.Host)...)
}

// reloadClients makes amavis, postfix and squid read their changed
// configuration (after apply as after rollback).
func reloadClients(h *Host) [][]string {
	var s [][]string
	c := ClientsOf(h)
	if c.Amavis {
		s = append(s, []string{"systemctl", "restart", amavisUnit(h)})
	}
	if c.Postfix {
		s = append(s, []string{"postfix", "reload"})
	}
	if c.Squid {
		s = append(s, []string{"squid", "-k", "reconfigure"})
	}
	return s
}

func amavisUnit(h *Host) string {
	if h.Family == "rhel" {
		return "amavisd.service"
	}
	return "amavis.service"
}

// Deactivation stops the gateway and its engine before rollback removes
// their units; disabling first leaves no dangling *.wants links behind.
// Only the units the host has are named (an edge has no engine, a host
// without TCP listeners no socket): systemctl refuses to disable a unit
// that does not exist.
func Deactivation(root string) [][]string {
	cmd := []string{"systemctl", "disable", "--now", "clamgate.service"}
	for _, u := range []string{GatewaySocketUnit, EngineUnit} {
		if _, err := os.Lstat(filepath.Join(root, u)); err == nil {
			cmd = append(cmd, path.Base(u))
		}
	}
	return [][]string{cmd}
}

// Reactivation brings the host's own daemons back after rollback:
// daemon-reload, then start the units rollback unmasked (the caller skips
// those that were never enabled), then the clients reread their
// configuration.
func Reactivation(h *Host, unmasked []string) [][]string {
	s := [][]string{{"systemctl", "daemon-reload"}}
	if len(unmasked) > 0 {
		s = append(s, append([]string{"systemctl", "start"}, unmasked...))
	}
	return append(s, reloadClients(h)...)
}

// Unmasked lists the units whose masks the rolled-back applies in dirs
// had written: symlinks directly in /etc/systemd/system, in manifest order.
func Unmasked(dirs []string) ([]string, error) {
	var units []string
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "manifest.rolled-back.json"))
		if err != nil {
			return nil, err
		}
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		for _, e := range m.Entries {
			if e.Written == "" && path.Dir(e.Path) == "/etc/systemd/system" {
				units = append(units, path.Base(e.Path))
			}
		}
	}
	return units, nil
}

// Pending tells whether an apply is waiting to be rolled back.
func Pending(root string) (bool, error) {
	m, err := filepath.Glob(filepath.Join(root, BackupDir, "*", "manifest.json"))
	return len(m) > 0, err
}
