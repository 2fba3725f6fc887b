package engine

// A managed clamd under a systemd unit of its own ([engine] unit; the
// Debian package's clamgate-engine.service). The packaged gateway runs as
// the unprivileged clamgate user: it can neither switch clamd to another
// user nor give it a cgroup, so a database of real size would load inside
// the gateway's own MemoryHigh. systemd does both instead. The work is
// split in two:
//
//   - `clamgate engine prepare` (PrepareUnit) runs as root in the unit's
//     ExecCondition=, before every start: it chooses the database, sizes
//     the memory budget from it (the caller gives it to the unit as
//     MemoryMax=), decides the reload mode for that budget and writes
//     clamd.conf into UnitDir. The unit then runs clamd as its own user,
//     hardened by systemd.
//   - the gateway (attachUnit) reads that clamd.conf for the database it
//     must watch and the mode clamd runs in, and connects to the socket.
//     systemd supervises clamd; the gateway starts and restarts nothing.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"clamgate/internal/rss"
	"clamgate/internal/sigdb"
)

// UnitDir holds what PrepareUnit writes: clamd.conf and, when asked for,
// the built-in test database. Root's, like /run above it, so that the
// engine's user, which owns only its socket directory, can plant nothing
// where root writes.
const UnitDir = "/run/clamgate-engine"

// modeTag starts the clamd.conf comment that hands the reload mode
// PrepareUnit decided to the gateway.
const modeTag = "# clamgate reload mode: "

// PrepareUnit prepares clamd for the engine unit and returns the memory
// budget, in bytes, the unit must be given: the managed engine's own cap
// (twice the loaded size, or room for a concurrent reload with reload =
// "auto"), estimated from the database on disk.
func (e *Engine) PrepareUnit() (int64, error) {
	if os.Geteuid() != 0 {
		return 0, errors.New("engine prepare runs as root, in the engine unit's ExecCondition=+")
	}
	if err := rootDir(e.unitDir); err != nil {
		return 0, err
	}
	if err := e.unitDatabase(); err != nil {
		return 0, err
	}
	budget := e.memoryMax()
	mode := ConfiguredMode(e.cfg.Reload)
	if e.cfg.Reload == "auto" {
		available, err := rss.Available()
		if err != nil {
			e.log.Warn("reload mode: cannot read MemAvailable", "err", err)
		}
		// No resident clamd counts: the unit's clamd has exited, or is
		// about to start afresh, when this runs.
		loaded := sigdb.SizeMemory(sigdb.DiskBytes(e.dbDir)).LoadedMiB << 20
		mode = chooseReload(loaded, false, 0, budget, available)
	}
	e.next.Store(&mode)
	e.log.Info("engine unit prepared", "unit", e.cfg.Unit, "database", e.dbDir, "builtin_test_database", e.builtin,
		"memory_max_mib", budget>>20, "reload", mode.Name(), "why", mode.Why)
	return budget, writeAtomic(filepath.Join(e.unitDir, "clamd.conf"), []byte(e.unitConf(mode)))
}

// unitDatabase resolves the database as the in-process engine does; the
// built-in test database, asked for by name, is written under UnitDir.
func (e *Engine) unitDatabase() error {
	dir, builtin, err := ResolveDatabase(e.cfg)
	if err != nil {
		return err
	}
	if builtin {
		dir = filepath.Join(e.unitDir, "testdb")
		if err := rootDir(dir); err != nil {
			return err
		}
		err = eachTestDBFile(func(name string, data []byte) error {
			return writeAtomic(filepath.Join(dir, name), data)
		})
	}
	e.dbDir, e.builtin = dir, builtin
	return err
}

// unitConf is the managed clamd.conf with what systemd provides instead:
// the journal for its log, a private /tmp, its main PID; the socket is
// the group's, since the gateway runs as another user, in the socket
// directory's group (clamgate, setgid, from tmpfiles.d). Every other line,
// the engine's limits and reload settings, is the in-process engine's.
func (e *Engine) unitConf(mode ReloadMode) string {
	tag, _ := json.Marshal(mode)
	out := []string{modeTag + string(tag)}
	for _, line := range strings.Split(strings.TrimSuffix(e.clamdConf(), "\n"), "\n") {
		key, _, _ := strings.Cut(line, " ")
		switch key {
		case "PidFile", "LogFile", "LogTime":
			continue
		case "TemporaryDirectory":
			line = "TemporaryDirectory /tmp"
		case "LocalSocketMode": // the gateway is another user, of the directory's group
			line = "LocalSocketMode 660"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}

// attachUnit is the gateway's Prepare for an engine unit.
func (e *Engine) attachUnit() error {
	path := filepath.Join(e.unitDir, "clamd.conf")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("the engine unit %s has not prepared clamd (%w): clamgate.service wants it started first; see systemctl status %s", e.cfg.Unit, err, e.cfg.Unit)
	}
	var mode ReloadMode
	for _, line := range strings.Split(string(data), "\n") {
		if tag, ok := strings.CutPrefix(line, modeTag); ok {
			if err := json.Unmarshal([]byte(tag), &mode); err != nil {
				return fmt.Errorf("%s: the reload mode: %w", path, err)
			}
		}
		if dir, ok := strings.CutPrefix(line, "DatabaseDirectory "); ok {
			e.dbDir = dir
		}
	}
	if e.dbDir == "" || mode.Basis == "" {
		return fmt.Errorf("%s was not written by clamgate engine prepare (no DatabaseDirectory or reload mode)", path)
	}
	e.builtin = e.dbDir == filepath.Join(e.unitDir, "testdb")
	e.next.Store(&mode)
	e.running.Store(&mode)
	e.log.Info("managed clamd runs under its own unit", "unit", e.cfg.Unit, "socket", e.Socket(), "reload", mode.Name())
	return nil
}

// unitPID is the clamd listening on sock, as the kernel reports the
// listener (SO_PEERCRED of a connection to it); 0 when none answers.
func unitPID(sock string) int {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var cred *syscall.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return 0
	}
	return int(cred.Pid)
}

// rootDir makes dir a directory of root's, 0755, and refuses anything
// else found there (a link, another owner's directory, one others may
// write). Only root can change what is in a directory root owns and only
// root may write, so the checked directory stays the one written to.
func rootDir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s must be a directory of root's, writable by root only (found %s)", dir, fi.Mode())
	}
	if fi.Mode().Perm() != 0o755 { // made under a tighter umask: clamd's user must read it
		return os.Chmod(dir, 0o755)
	}
	return nil
}

// writeAtomic replaces path by a new file: a reader (clamd, the gateway)
// never sees half of it, and a link at path is replaced, not followed.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".clamd.conf.*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
