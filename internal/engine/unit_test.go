package engine

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
)

// TestEngineUnit: what `clamgate engine prepare` writes runs the real clamd
// as the unit would (its own user, the socket directory its only write),
// and the gateway's side attaches to it: the same database, the same reload
// mode, clamd's pid through the socket, EICAR found.
func TestEngineUnit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("engine prepare runs as root")
	}
	clamav, err := user.Lookup(DefaultUser)
	if err != nil {
		t.Skip("no clamav user: ", err)
	}
	uid, _ := strconv.Atoi(clamav.Uid)
	gid, _ := strconv.Atoi(clamav.Gid)
	base := t.TempDir()
	for _, dir := range []string{filepath.Dir(base), base} { // clamd's user walks down to the conf and socket
		must(t, os.Chmod(dir, 0o755))
	}
	state := filepath.Join(base, "engine")
	must(t, os.Mkdir(state, 0o750))
	must(t, os.Chown(state, uid, gid))
	cfg := config.Engine{Clamd: "/usr/sbin/clamd", StateDir: state, Database: writeBuiltin(t, base), MaxThreads: 2,
		StreamMaxLength: 1 << 20, Unit: "clamgate-engine.service", Reload: "auto"}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))

	prep := New(cfg, log)
	prep.unitDir = filepath.Join(base, "unit")
	budget, err := prep.PrepareUnit()
	must(t, err)
	if want := autoMemoryMax(cfg.Database); budget != want {
		t.Errorf("budget %d, want the engine's own auto cap %d", budget, want)
	}
	conf, err := os.ReadFile(filepath.Join(prep.unitDir, "clamd.conf"))
	must(t, err)
	for _, line := range []string{"LocalSocket " + filepath.Join(state, "clamd.sock"), "DatabaseDirectory " + cfg.Database,
		"TemporaryDirectory /tmp", "MaxThreads 2", "LocalSocketMode 660"} {
		if !strings.Contains(string(conf), line+"\n") {
			t.Errorf("clamd.conf lacks %q:\n%s", line, conf)
		}
	}
	for _, key := range []string{"PidFile", "LogFile"} {
		if strings.Contains(string(conf), "\n"+key+" ") {
			t.Errorf("clamd.conf sets %s, which the unit provides:\n%s", key, conf)
		}
	}

	cmd := exec.Command(cfg.Clamd, "--foreground=true", "--config-file="+filepath.Join(prep.unitDir, "clamd.conf"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	must(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	gw := New(cfg, log)
	gw.unitDir = prep.unitDir
	must(t, gw.Prepare())
	if dir, builtin := gw.Database(); dir != cfg.Database || builtin {
		t.Errorf("the gateway attached to database %s (builtin %v), want %s", dir, builtin, cfg.Database)
	}
	if got, want := gw.ReloadMode(), *prep.next.Load(); got != want {
		t.Errorf("the gateway's reload mode %+v, the unit's %+v", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	must(t, gw.WaitReady(ctx))
	if pid := gw.PID(); pid != cmd.Process.Pid {
		t.Errorf("PID() = %d, clamd is %d", pid, cmd.Process.Pid)
	}
	if mode, restart := gw.Redecide(); restart || mode != gw.ReloadMode() {
		t.Errorf("Redecide under a unit: %+v restart %v; the unit decides at its start", mode, restart)
	}
	c := &clamd.Client{Network: "unix", Address: gw.Socket(), Timeout: 10 * time.Second}
	if got, err := c.Instream(ctx, strings.NewReader(eicar)); err != nil || !strings.HasSuffix(got, "FOUND") {
		t.Fatalf("EICAR through the unit's clamd: %q %v", got, err)
	}
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- gw.Run(runCtx) }()
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run under a unit: %v", err)
	}
	if reply, err := c.Command(ctx, "PING"); err != nil || reply != "PONG" {
		t.Errorf("the unit's clamd after the gateway's Run ended: %q %v", reply, err)
	}
}

// TestEngineUnitBuiltin: asked for by name, prepare writes the built-in
// test database into its own directory and the gateway knows it for what
// it is.
func TestEngineUnitBuiltin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("engine prepare runs as root")
	}
	base := t.TempDir()
	cfg := config.Engine{StateDir: filepath.Join(base, "engine"), Database: TestDatabase, MaxThreads: 2, StreamMaxLength: 1 << 20, Unit: "x.service", Reload: "frugal"}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	prep := New(cfg, log)
	prep.unitDir = filepath.Join(base, "unit")
	_, err := prep.PrepareUnit()
	must(t, err)
	gw := New(cfg, log)
	gw.unitDir = prep.unitDir
	must(t, gw.Prepare())
	if dir, builtin := gw.Database(); !builtin || dir != filepath.Join(prep.unitDir, "testdb") {
		t.Errorf("database %s builtin %v", dir, builtin)
	}
	if !gw.ReloadMode().Frugal {
		t.Error("reload = frugal not carried over")
	}
}

// TestEngineUnitDirRefused: root writes clamd.conf only into a directory
// of its own; a link or a directory others may write is refused.
func TestEngineUnitDirRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("engine prepare runs as root")
	}
	base := t.TempDir()
	elsewhere := filepath.Join(base, "elsewhere")
	must(t, os.Mkdir(elsewhere, 0o755))
	link := filepath.Join(base, "link")
	must(t, os.Symlink(elsewhere, link))
	open := filepath.Join(base, "open")
	must(t, os.Mkdir(open, 0o777))
	must(t, os.Chmod(open, 0o777))
	for _, dir := range []string{link, open} {
		e := New(config.Engine{StateDir: base, Database: writeBuiltin(t, base), Unit: "x.service", Reload: "frugal"},
			slog.New(slog.NewTextHandler(testWriter{t}, nil)))
		e.unitDir = dir
		if _, err := e.PrepareUnit(); err == nil {
			t.Errorf("%s: prepared", dir)
		}
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) > 0 {
		t.Errorf("written through the link: %v", entries)
	}
}

// writeBuiltin writes the built-in test database into dir/builtin, as an
// administrator's own database directory would be.
func writeBuiltin(t *testing.T, dir string) string {
	db := filepath.Join(dir, "builtin")
	must(t, os.MkdirAll(db, 0o755))
	must(t, eachTestDBFile(func(name string, data []byte) error {
		return os.WriteFile(filepath.Join(db, name), data, 0o644)
	}))
	return db
}
