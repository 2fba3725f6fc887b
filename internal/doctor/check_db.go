package doctor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"clamgate/internal/sigdb"
)

const (
	dbWarnAge = 24 * time.Hour
	dbFailAge = 7 * 24 * time.Hour
)

func databaseCheck() check {
	return check{
		id: "database", title: "the signature database is current", expected: "< 24 h old (fail > 7 days)",
		source: "A database that stopped updating misses every new threat while every scan still answers clean. docs/doctor.md#database", offline: true,
		run: checkDatabase,
	}
}

// databaseDir is what the engine loads: the config's, else freshclam's.
func databaseDir(env *Env) string {
	dir := env.DBDir
	if dir == "" && env.Config != nil {
		dir = env.Config.Database.Dir
		if dir == "" && env.Config.Engine != nil {
			dir = env.Config.Engine.Database
		}
	}
	if dir == "" {
		dir = DefaultDatabase
	}
	return env.path(dir)
}

func checkDatabase(_ context.Context, h *host) verdict {
	dir := databaseDir(h.env)
	fix := "enable freshclam (systemctl enable --now " + FreshclamUnit + ") and check its log"
	snap, err := sigdb.Load(dir)
	if err != nil {
		return verdict{status: Fail, measured: err.Error(), fix: fix}
	}
	if len(snap.Files) == 0 {
		return verdict{status: Fail, measured: "no signature file in " + h.env.display(dir), fix: "run freshclam once: clamd does not start without signatures"}
	}
	age := snap.Age(h.env.Now)
	m := fmt.Sprintf("%s: version %d, %d signatures, built %s (%s ago)", h.env.display(dir), snap.Version, snap.Signatures,
		snap.BuildTime.UTC().Format("2006-01-02 15:04 UTC"), roundAge(age))
	switch {
	case snap.BuildTime.IsZero():
		return verdict{status: Warn, measured: m + "; build time unknown", fix: fix}
	case age > dbFailAge:
		return verdict{status: Fail, measured: m, fix: fix}
	case age > dbWarnAge:
		return verdict{status: Warn, measured: m, fix: fix}
	}
	return pass(m)
}

// roundAge is coarse on purpose: a database is hours or days old.
func roundAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d min", int(d/time.Minute))
}

func freshclamCheck() check {
	return check{
		id: "freshclam", title: "freshclam keeps the host's database current", expected: "enabled or running",
		source: "Without freshclam on the host nothing updates the one database the engine loads. docs/doctor.md#freshclam", offline: true,
		run: checkFreshclam,
	}
}

func checkFreshclam(_ context.Context, h *host) verdict {
	etc := h.env.path("/etc/systemd/system")
	if target, err := os.Readlink(filepath.Join(etc, FreshclamUnit)); err == nil && target == "/dev/null" {
		return verdict{status: Fail, measured: FreshclamUnit + " is masked", fix: "systemctl unmask " + FreshclamUnit + " && systemctl enable --now " + FreshclamUnit}
	}
	var found []string
	for _, wants := range []string{"multi-user.target.wants", "default.target.wants"} {
		if exists(filepath.Join(etc, wants, FreshclamUnit)) {
			found = append(found, "enabled ("+wants+")")
			break
		}
	}
	if !h.env.Offline {
		for _, p := range h.named(func(p *process) bool { return p.is("freshclam") }) {
			found = append(found, "running ("+p.who()+")")
		}
	}
	if len(found) == 0 {
		return verdict{status: Fail, measured: "not enabled and not running", fix: "systemctl enable --now " + FreshclamUnit}
	}
	return pass(joinSemi(found))
}
