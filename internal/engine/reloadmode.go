package engine

import (
	"fmt"

	"clamgate/internal/rss"
	"clamgate/internal/sigdb"

	"golang.org/x/sys/unix"
)

// ReloadMode is how clamd loads a changed database and why: concurrent
// (clamd builds the new engine beside the old one, scans go on, twice the
// memory while it lasts) or frugal (one engine in memory, scans held).
type ReloadMode struct {
	Frugal bool
	// Basis is what decided: "config" (an explicit frugal or concurrent),
	// "cgroup" (the engine's memory cap), "host" (MemAvailable, no
	// tighter cap), "unknown" (neither could be read), "external" (a
	// clamd whose setting the gateway can neither see nor change) or
	// "oom" (clamd was killed for memory while reloads were concurrent).
	Basis string
	Why   string
	// Loaded is the database's size in memory (measured RSS, or the
	// estimate from disk before clamd has loaded); Room what the engine
	// may grow to; Need two databases plus the margin. Bytes, 0 when not
	// part of the decision.
	Loaded, Room, Need int64
}

// Name is the mode as the configuration spells it.
func (m ReloadMode) Name() string {
	if m.Frugal {
		return "frugal"
	}
	return "concurrent"
}

// ConfiguredMode is an explicit [database] reload.
func ConfiguredMode(name string) ReloadMode {
	return ReloadMode{Frugal: name == "frugal", Basis: "config", Why: "[database] reload = " + name}
}

// ExternalMode is "auto" for a clamd the gateway does not run. The gateway
// cannot tell whether it reloads concurrently: holding requests is right
// either way (a concurrent clamd answers the PING after RELOAD at once, so
// the hold lasts the drain of running scans), while not holding them with a
// non-concurrent clamd leaves every scan to time out inside it.
func ExternalMode() ReloadMode {
	return ReloadMode{Frugal: true, Basis: "external",
		Why: "external clamd: its ConcurrentDatabaseReload is unknown to the gateway, so requests are held during the reload, which is safe with either setting"}
}

// reloadMargin is what a concurrent reload needs beyond two databases:
// scan buffers and the allocator's slack while both engines live.
func reloadMargin(loaded int64) int64 { return max(128<<20, loaded/4) }

// chooseReload is the rule of reload = "auto": concurrent when the room
// the engine may grow into holds two databases plus a margin, frugal (one
// database, 1x RAM) otherwise. The room is the cgroup's cap, bounded by
// what the host can give: resident (what the engine holds now, and frees
// on a restart) plus MemAvailable. capBytes or available of 0 is unknown.
func chooseReload(loaded int64, measured bool, resident, capBytes, available int64) ReloadMode {
	m := ReloadMode{Basis: "unknown", Loaded: loaded, Need: 2*loaded + reloadMargin(loaded)}
	if available > 0 {
		m.Room, m.Basis = resident+available, "host"
	}
	if capBytes > 0 && (m.Room == 0 || capBytes <= m.Room) {
		m.Room, m.Basis = capBytes, "cgroup"
	}
	m.Frugal = m.Room < m.Need
	how := "estimated from the database on disk"
	if measured {
		how = "measured RSS"
	}
	verdict := "leaves room for"
	if m.Frugal {
		verdict = "does not leave room for"
	}
	what := map[string]string{"host": "the host's available memory (resident + MemAvailable)",
		"cgroup": "the engine's cgroup cap", "unknown": "an unknown memory cap"}[m.Basis]
	m.Why = fmt.Sprintf("%s, %d MiB, %s two databases: 2 x %d MiB (%s) + %d MiB margin = %d MiB",
		what, m.Room>>20, verdict, loaded>>20, how, reloadMargin(loaded)>>20, m.Need>>20)
	return m
}

// autoMemoryMax caps a clamd whose reload mode is auto: room for two
// databases estimated from disk plus the margin, so that the cap the
// gateway sets itself never rules the concurrent reload out; a cap above
// it (clamgate's unit's MemoryMax) or the host still may.
func autoMemoryMax(dir string) int64 {
	loaded := sigdb.SizeMemory(sigdb.DiskBytes(dir)).LoadedMiB << 20
	const step = 64 << 20
	return (2*loaded + reloadMargin(loaded) + step - 1) / step * step
}

// decideReload applies the configured mode, or for auto measures what it
// can: the running clamd's RSS (else the estimate from disk), its
// cgroup's cap and the host's MemAvailable.
func (e *Engine) decideReload() ReloadMode {
	if e.oomed.Load() {
		return oomMode
	}
	if e.cfg.Reload != "auto" {
		return ConfiguredMode(e.cfg.Reload)
	}
	loaded := sigdb.SizeMemory(sigdb.DiskBytes(e.dbDir)).LoadedMiB << 20
	var resident int64
	measured := false
	if pid := e.PID(); pid > 0 {
		if n, err := rss.Read(pid); err == nil {
			loaded, resident, measured = n, n, true
		}
	}
	var capBytes int64
	if dir := e.Cgroup(); dir != "" {
		capBytes = rss.Limit(dir)
	}
	available, err := rss.Available()
	if err != nil {
		e.log.Warn("reload mode: cannot read MemAvailable", "err", err)
	}
	return chooseReload(loaded, measured, resident, capBytes, available)
}

// ReloadMode is the mode the running clamd started with (before it has
// started, the one it will start with).
func (e *Engine) ReloadMode() ReloadMode {
	if m := e.running.Load(); m != nil {
		return *m
	}
	return e.nextMode()
}

func (e *Engine) nextMode() ReloadMode {
	if m := e.next.Load(); m != nil {
		return *m
	}
	return ConfiguredMode(e.cfg.Reload)
}

// Redecide measures again, once clamd has loaded a database, whether a
// concurrent reload fits. clamd reads ConcurrentDatabaseReload only when
// it starts, so a changed choice rewrites clamd.conf and reports restart:
// the caller then restarts clamd (which loads the new database with one
// engine in memory, as frugal does) instead of sending RELOAD.
//
// The choice is compared with the mode the running clamd started with,
// not with the last choice, so that a restart that failed is tried again.
func (e *Engine) Redecide() (mode ReloadMode, restart bool) {
	running := e.ReloadMode()
	if e.unitDir != "" {
		// The unit decides at each start, for the budget it is given; the
		// gateway can neither rewrite its clamd.conf nor restart it.
		return running, false
	}
	mode = e.decideReload()
	if mode.Frugal != e.nextMode().Frugal {
		prev := e.next.Swap(&mode)
		if err := e.writeConf(); err != nil {
			e.log.Error("reload mode: cannot rewrite clamd.conf; keeping the running mode", "err", err)
			e.next.Store(prev)
			return running, false
		}
	}
	if mode.Frugal == running.Frugal {
		e.running.Store(&mode) // the same mode, on today's figures
		return mode, false
	}
	return mode, true
}

// writeConf rewrites clamd.conf through a descriptor of the state
// directory, walked to again from "/" (see openStateDir).
func (e *Engine) writeConf() error {
	fd, err := walkDirs(e.cfg.StateDir, e.eng)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return e.writeConfAt(fd)
}

// writeConfAt writes clamd.conf, root's and readable by clamd's group
// only, in the state directory held by dir.
func (e *Engine) writeConfAt(dir int) error {
	return writeFile(dir, "clamd.conf", []byte(e.clamdConf()), 0o640, e.eng.rootUID(), e.eng.gid)
}

// oomMode is the mode after clamd was killed for memory in its cgroup
// while its reloads were concurrent: whatever the figures or the
// configuration said, two databases did not fit.
var oomMode = ReloadMode{Frugal: true, Basis: "oom",
	Why: "clamd was killed for memory (an OOM kill in its cgroup) while its reloads were concurrent: frugal until clamgate restarts"}

// afterOOM makes every later clamd of this engine frugal, starting with
// the one Run starts next: a concurrent reload holds two databases at
// once, the likeliest reason for the kill.
func (e *Engine) afterOOM(exit error) {
	e.oomed.Store(true)
	if e.nextMode().Frugal {
		e.log.Error("clamd was killed for memory in frugal mode: its cap is below one database", "err", exit, "cgroup", e.Cgroup())
		return
	}
	mode := oomMode
	prev := e.next.Swap(&mode)
	if err := e.writeConf(); err != nil {
		e.next.Store(prev)
		e.log.Error("clamd was killed for memory; cannot rewrite clamd.conf to frugal", "err", err)
		return
	}
	e.log.Error("clamd was killed for memory during concurrent reloads: restarting it frugal", "err", exit, "cgroup", e.Cgroup(), "why", mode.Why)
}
