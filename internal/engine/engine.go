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
	"slices"
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
	sb      *sandbox.Sandbox
	pid     atomic.Int64               // the running clamd's, 0 between runs
	next    atomic.Pointer[ReloadMode] // the mode clamd.conf sets
	running atomic.Pointer[ReloadMode] // the mode the running clamd started with
	oomed   atomic.Bool                // clamd was killed for memory: frugal from then on
	restart chan chan struct{}         // Restart's requests to Run, closed once clamd has exited
}

// PID is the running clamd's process id, 0 when none runs.
func (e *Engine) PID() int { return int(e.pid.Load()) }

// DefaultUser is the user clamd runs as when clamgate runs as root and
// the configuration names none: the one Debian's clamav packages create.
const DefaultUser = "clamav"

// New prepares a managed clamd from its configuration.
func New(cfg config.Engine, log *slog.Logger) *Engine {
	if cfg.User == "" && os.Geteuid() == 0 {
		cfg.User = DefaultUser
	}
	return &Engine{cfg: cfg, log: log.With("component", "engine"), restart: make(chan chan struct{})}
}

// Socket is the unix socket the managed clamd listens on (gateway only).
func (e *Engine) Socket() string { return filepath.Join(e.cfg.StateDir, "clamd.sock") }

// Address is the backend address of the managed clamd.
func (e *Engine) Address() string { return "unix:" + e.Socket() }

// Database is the directory clamd loads, and whether it is the built-in
// test database.
func (e *Engine) Database() (string, bool) { return e.dbDir, e.builtin }

// Prepare chooses the database, sets up the sandbox (which logs the
// layers it cannot have) and writes clamd.conf.
func (e *Engine) Prepare() error {
	if err := os.MkdirAll(e.tmpDir(), 0o750); err != nil {
		return err
	}
	if err := e.chooseDatabase(); err != nil {
		return err
	}
	sb, err := sandbox.New(sandbox.Config{
		Program: e.cfg.Clamd, Args: []string{e.cfg.Clamd, "--config-file=" + e.confPath()}, Env: clamdEnv(),
		User: e.cfg.User, Database: e.dbDir, StateDir: e.cfg.StateDir, MemoryMax: e.memoryMax(), Log: e.log,
	})
	if err != nil {
		return err
	}
	e.sb = sb
	mode := e.decideReload()
	e.next.Store(&mode)
	e.log.Info("database reload mode", "mode", mode.Name(), "basis", mode.Basis, "why", mode.Why)
	if err := e.writeConf(); err != nil {
		return err
	}
	return e.chownState()
}

func (e *Engine) confPath() string { return filepath.Join(e.cfg.StateDir, "clamd.conf") }

// tmpDir holds clamd's temporary files inside the state directory, the
// only place the sandbox lets it write.
func (e *Engine) tmpDir() string { return filepath.Join(e.cfg.StateDir, "tmp") }

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

// clamdEnv is the gateway's environment without systemd's notify socket
// and watchdog, which are the gateway's: clamd must not answer on them.
func clamdEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(v string) bool {
		return strings.HasPrefix(v, "NOTIFY_SOCKET=") || strings.HasPrefix(v, "WATCHDOG_")
	})
}

// chooseDatabase uses the configured directory, else the system one when
// freshclam has filled it, else the built-in test database (EICAR and
// ClamAV's own test files only), so that a first run always scans.
func (e *Engine) chooseDatabase() error {
	switch {
	case e.cfg.Database != "":
		e.dbDir = e.cfg.Database
	case HasSignatures(SystemDatabase):
		e.dbDir = SystemDatabase
	default:
		e.builtin = true
		e.dbDir = filepath.Join(e.cfg.StateDir, "testdb")
		return writeTestDB(e.dbDir)
	}
	if !HasSignatures(e.dbDir) {
		return fmt.Errorf("database directory %s holds no signature files", e.dbDir)
	}
	return nil
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

func writeTestDB(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := testDB.ReadDir("testdb")
	if err != nil {
		return err
	}
	for _, ent := range entries {
		data, err := testDB.ReadFile("testdb/" + ent.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, ent.Name()), data, 0o644); err != nil {
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
		"PidFile " + filepath.Join(e.cfg.StateDir, "clamd.pid"),
		"TemporaryDirectory " + e.tmpDir(),
		"LogFile " + filepath.Join(e.cfg.StateDir, "clamd.log"),
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

// chownState hands the state directory and its tmp to clamd's user, which
// creates its socket, pid file, log and temporary files there; clamd.conf
// stays root's, readable by clamd's group only.
func (e *Engine) chownState() error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid := e.sb.UID()
	for _, dir := range []string{e.cfg.StateDir, e.tmpDir()} {
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
	}
	// A log and pid file left by a clamd that ran as root (before the
	// sandbox, or under another user) would keep clamd from starting.
	for _, name := range []string{"clamd.log", "clamd.pid"} {
		if err := os.Chown(filepath.Join(e.cfg.StateDir, name), uid, gid); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.Chown(e.confPath(), 0, gid)
}

// Run starts clamd and restarts it whenever it exits, until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
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
		e.log.Error("clamd exited; restarting", "err", err, "in", backoff)
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
	out := logWriter(e.log)
	cmd, err := e.sb.Start(out, out)
	if err != nil {
		out.Close()
		return err
	}
	e.running.Store(e.next.Load())
	e.pid.Store(int64(cmd.Process.Pid))
	defer e.pid.Store(0)
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
func logWriter(log *slog.Logger) io.WriteCloser {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			level := slog.LevelDebug
			if strings.Contains(line, "ERROR") || strings.Contains(line, "WARNING") || strings.Contains(line, "rror") {
				level = slog.LevelWarn
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
