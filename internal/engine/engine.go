// Package engine runs and supervises a clamd for the gateway when no
// external one is configured: it writes clamd.conf, picks the signature
// database, starts clamd confined by internal/sandbox, restarts it if it
// dies and waits until it answers PING.
package engine

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/rss"
	"clamgate/internal/sandbox"
	"clamgate/internal/sigdb"

	"golang.org/x/sys/unix"
)

//go:embed testdb/*
var testDB embed.FS

// SystemDatabase is where Debian's freshclam keeps the signatures.
const SystemDatabase = "/var/lib/clamav"

// Engine is a managed clamd.
type Engine struct {
	cfg     config.Engine
	log     *slog.Logger
	dbDir   string
	builtin bool
	eng     owner // the engine's user, and whether clamgate is root
	sb      *sandbox.Sandbox
	pid     atomic.Int64               // the running clamd's, 0 between runs
	next    atomic.Pointer[ReloadMode] // the mode clamd.conf sets
	running atomic.Pointer[ReloadMode] // the mode the running clamd started with
	oomed   atomic.Bool                // clamd was killed for memory: frugal from then on
	restart chan chan struct{}         // Restart's requests to Run, closed once clamd has exited
	health  healthBook
	unitDir string // UnitDir when a systemd unit runs clamd ([engine] unit), else ""
	acts    activations
}

// PID is the running clamd's process id, 0 when none runs.
func (e *Engine) PID() int {
	if e.unitDir != "" {
		return unitPID(e.Socket())
	}
	return int(e.pid.Load())
}

// DefaultUser is the user clamd runs as when clamgate runs as root and
// the configuration names none: a user of the engine's own, which
// scripts/run.sh and the package create. Sharing a uid with freshclam or
// another daemon would let that daemon read clamd's memory and write its
// state (see CheckUser).
const DefaultUser = "clamgate-engine"

// TestDatabase is the [engine] database value that asks for the built-in
// test database (EICAR and ClamAV's test files only).
const TestDatabase = "test"

// New prepares a managed clamd from its configuration.
func New(cfg config.Engine, log *slog.Logger) *Engine {
	if cfg.User == "" && os.Geteuid() == 0 {
		cfg.User = DefaultUser
	}
	e := &Engine{cfg: cfg, log: log.With("component", "engine"), restart: make(chan chan struct{})}
	if cfg.Unit != "" {
		e.unitDir = UnitDir
	}
	return e
}

// Socket is the unix socket the managed clamd listens on (gateway only).
func (e *Engine) Socket() string {
	if e.unitDir != "" { // the unit's directory, clamd's own (tmpfiles): root writes nothing there
		return filepath.Join(e.cfg.StateDir, "clamd.sock")
	}
	return filepath.Join(e.cfg.StateDir, runSub, "clamd.sock")
}

// Address is the backend address of the managed clamd.
func (e *Engine) Address() string { return "unix:" + e.Socket() }

// Database is the directory clamd loads, and whether it is the built-in
// test database.
func (e *Engine) Database() (string, bool) { return e.dbDir, e.builtin }

// Prepare checks the engine's user and database, creates or repairs the
// state directory (see openStateDir), writes clamd.conf, sets up the
// sandbox (which logs the layers it cannot have) and checks, as the
// engine's user, that clamd can reach what it needs.
func (e *Engine) Prepare() error {
	if e.unitDir != "" {
		return e.attachUnit()
	}
	var err error
	if e.eng, err = e.owner(); err != nil {
		return err
	}
	if e.dbDir, e.builtin, err = ResolveDatabase(e.cfg); err != nil {
		return err
	}
	dir, err := openStateDir(e.cfg.StateDir, e.eng)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	defer dir.Close()
	if e.builtin {
		if err := writeTestDB(dir); err != nil {
			return fmt.Errorf("built-in test database: %w", err)
		}
	}
	program, err := e.installClamd(dir)
	if err != nil {
		return err
	}
	sb, err := sandbox.New(sandbox.Config{
		Program: program, Args: []string{e.cfg.Clamd, "--config-file=" + e.confPath()}, Env: clamdEnv(),
		User: e.cfg.User, Database: e.dbDir, StateDir: e.cfg.StateDir, MemoryMax: e.memoryMax(), Log: e.log,
		Writable: []string{e.stateSub(runSub), e.stateSub(logSub), e.stateSub(tmpSub)},
	})
	if err != nil {
		return err
	}
	e.sb = sb
	mode := e.decideReload()
	e.next.Store(&mode)
	e.log.Info("database reload mode", "mode", mode.Name(), "basis", mode.Basis, "why", mode.Why)
	if err := e.writeConfAt(dir.fd); err != nil {
		return err
	}
	return e.sb.Probe(e.reachable())
}

// owner resolves the engine's user, refusing one that is missing or
// shared (CheckUser).
func (e *Engine) owner() (owner, error) {
	if os.Geteuid() != 0 {
		return owner{uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	uid, gid, err := CheckUser(e.cfg.User)
	return owner{uid: uid, gid: gid, root: true}, err
}

func (e *Engine) stateSub(name string) string { return filepath.Join(e.cfg.StateDir, name) }

func (e *Engine) confPath() string { return filepath.Join(e.cfg.StateDir, "clamd.conf") }

// tmpDir holds clamd's temporary files inside the state directory, the
// only place the sandbox lets it write.
func (e *Engine) tmpDir() string { return e.stateSub(tmpSub) }

// Cgroup is the memory cgroup the managed clamd runs in, "" for none.
func (e *Engine) Cgroup() string {
	if e.sb == nil {
		return ""
	}
	return e.sb.Cgroup()
}

// memoryMax caps clamd as deploy's unit and container are: twice the
// loaded size estimated from the database on disk; with reload = "auto"
// the margin of a concurrent reload on top (see autoMemoryMax).
func (e *Engine) memoryMax() int64 {
	if e.cfg.Reload == "auto" {
		return autoMemoryMax(e.dbDir)
	}
	return sigdb.SizeMemory(sigdb.DiskBytes(e.dbDir)).MaxMiB << 20
}

// clamdEnv is all clamd gets of an environment: not the gateway's, whose
// variables (systemd's notify socket, anything an administrator exported)
// are none of clamd's business and would be readable in
// /proc/<clamd>/environ.
func clamdEnv() []string {
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if tz, ok := os.LookupEnv("TZ"); ok {
		env = append(env, "TZ="+tz)
	}
	return env
}

// ResolveDatabase is the directory the managed clamd loads: the configured
// one, else the system one; the built-in test database only when asked for
// by name ([engine] database = "test"). A directory without signatures is
// an error that says what to do: a gateway must not run on the toy
// database and call itself ready. config check shares it with serve.
func ResolveDatabase(cfg config.Engine) (dir string, builtin bool, err error) {
	switch cfg.Database {
	case TestDatabase:
		return filepath.Join(cfg.StateDir, "testdb"), true, nil
	case "":
		dir = SystemDatabase
	default:
		dir = cfg.Database
	}
	if !HasSignatures(dir) {
		return dir, false, fmt.Errorf("database directory %s holds no signature files: run freshclam (package clamav-freshclam) to fill it, or set [engine] database = %q (--database %s) for the built-in EICAR-only test database", dir, TestDatabase, TestDatabase)
	}
	return dir, false, nil
}

// HasSignatures reports whether dir holds any ClamAV database file.
func HasSignatures(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, ent := range entries {
		switch filepath.Ext(ent.Name()) {
		case ".cvd", ".cld", ".cud", ".hdb", ".hsb", ".ndb", ".ldb", ".mdb", ".msb", ".cdb", ".yar", ".yara":
			return true
		}
	}
	return false
}

// writeTestDB writes the built-in database into the state directory's
// testdb, a directory of root's.
func writeTestDB(s *stateDir) error {
	fd, err := s.rootDir("testdb")
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return eachTestDBFile(func(name string, data []byte) error {
		return writeFile(fd, name, data, 0o644, s.eng.rootUID(), s.eng.rootUID())
	})
}

// eachTestDBFile calls f with each file of the built-in database.
func eachTestDBFile(f func(name string, data []byte) error) error {
	entries, err := testDB.ReadDir("testdb")
	if err != nil {
		return err
	}
	for _, ent := range entries {
		data, err := testDB.ReadFile("testdb/" + ent.Name())
		if err != nil {
			return err
		}
		if err := f(ent.Name(), data); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) clamdConf() string {
	lines := []string{
		"# Written by clamgate for its managed clamd; changes are overwritten.",
		"Foreground yes",
		"LocalSocket " + e.Socket(),
		"LocalSocketMode 600",
		"FixStaleSocket yes",
		"DatabaseDirectory " + e.dbDir,
		"PidFile " + filepath.Join(e.stateSub(runSub), "clamd.pid"),
		"TemporaryDirectory " + e.tmpDir(),
		"LogFile " + filepath.Join(e.stateSub(logSub), "clamd.log"),
		"LogTime yes",
		"MaxThreads " + strconv.Itoa(e.cfg.MaxThreads),
		"StreamMaxLength " + strconv.FormatInt(e.cfg.StreamMaxLength, 10),
		// An object past a scan limit is FOUND, not OK: policy on_limits decides.
		"AlertExceedsMax yes",
	}
	if e.nextMode().Frugal {
		// The gateway watches the database and holds requests while clamd
		// reloads with one engine in memory; clamd's own SelfCheck would
		// reload behind its back, stalling requests it is not holding.
		// A non-concurrent reload also waits for clamd's idle worker
		// threads to time out (IdleTimeout, 30 s by default): measured,
		// that wait is most of the stall, whatever the database's size.
		lines = append(lines, "ConcurrentDatabaseReload no", "SelfCheck 0", "IdleTimeout 2")
	} else {
		lines = append(lines, "ConcurrentDatabaseReload yes", "SelfCheck 600")
	}
	return strings.Join(lines, "\n") + "\n"
}

// Run starts clamd and restarts it whenever it exits, until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if e.unitDir != "" { // systemd supervises it
		<-ctx.Done()
		return nil
	}
	defer func() {
		if err := e.sb.Close(); err != nil {
			e.log.Warn("engine: removing clamd's cgroup", "err", err)
		}
	}()
	backoff := time.Second
	for {
		start, kills := time.Now(), e.oomKills()
		err := e.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errRestarted) {
			continue
		}
		if e.oomKills() > kills {
			e.afterOOM(err)
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		e.health.update(func(h *Health) {
			if time.Since(start) > time.Minute {
				h.Exits = 0
			}
			h.Running, h.Exits, h.Crashes, h.LastExit, h.NextStart = false, h.Exits+1, h.Crashes+1, errText(err), time.Now().Add(backoff)
		})
		e.log.Error("clamd exited; restarting", "err", err, "in", backoff, "last_error", e.Health().LastError)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		case exited := <-e.restart: // no clamd to stop: start the new one now
			close(exited)
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (e *Engine) runOnce(ctx context.Context) error {
	e.health.update(func(h *Health) { h.LastError = "" })
	out := logWriter(e.log, e.health.noteError, e.acts.line)
	cmd, err := e.sb.Start(out, out)
	if err != nil {
		out.Close()
		return err
	}
	e.running.Store(e.next.Load())
	e.pid.Store(int64(cmd.Process.Pid))
	defer e.pid.Store(0)
	e.health.update(func(h *Health) { h.Running, h.Started = true, time.Now() })
	e.log.Info("clamd started", "pid", cmd.Process.Pid, "database", e.dbDir, "builtin_test_database", e.builtin)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer out.Close()
	select {
	case err := <-done:
		return explainExit(err)
	case <-ctx.Done():
		stop(cmd, done)
		return ctx.Err()
	case exited := <-e.restart:
		e.log.Info("restarting clamd to apply its reload mode", "pid", cmd.Process.Pid, "mode", e.ReloadMode().Name())
		stop(cmd, done)
		e.pid.Store(0)
		close(exited)
		return errRestarted
	}
}

func errText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// errRestarted ends a run that Restart asked for: Run starts clamd again
// at once, without the backoff of a crash.
var errRestarted = errors.New("restarted on request")

// stop ends clamd with SIGTERM, and SIGKILL if it lingers.
func stop(cmd *exec.Cmd, done <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the running clamd and returns once it has exited; Run
// starts it again with the current clamd.conf at once. The caller waits
// for it with WaitReady.
func (e *Engine) Restart(ctx context.Context) error {
	exited := make(chan struct{})
	select {
	case e.restart <- exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// explainExit names the seccomp filter when it is what killed clamd, so
// that a system call missing from the allow list is found from the log.
func explainExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGSYS {
			return fmt.Errorf("%w: the sandbox's seccomp filter killed clamd for a system call outside its allow list (see internal/sandbox)", err)
		}
	}
	return err
}

// WaitReady polls clamd with PING until it answers PONG or ctx ends.
func (e *Engine) WaitReady(ctx context.Context) error {
	c := &clamd.Client{Network: "unix", Address: e.Socket(), Timeout: 2 * time.Second}
	return clamd.WaitPing(ctx, c)
}

// logWriter turns clamd's output lines into log records: its problems as
// warnings, its start-up chatter (limits, features) as debug.
func logWriter(log *slog.Logger, onError, onLine func(string)) io.WriteCloser {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			onLine(line)
			level := slog.LevelDebug
			if strings.Contains(line, "ERROR") || strings.Contains(line, "WARNING") || strings.Contains(line, "rror") {
				level = slog.LevelWarn
			}
			if strings.Contains(line, "ERROR") || strings.Contains(line, "Error:") {
				onError(line)
			}
			log.Log(context.Background(), level, "clamd: "+line)
		}
	}()
	return pw
}

// oomKills counts the OOM kills in clamd's memory cgroup (0 without one).
func (e *Engine) oomKills() int64 {
	if dir := e.Cgroup(); dir != "" {
		return rss.OOMKills(dir)
	}
	return 0
}
