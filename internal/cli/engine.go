package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"

	"clamgate/internal/config"
	"clamgate/internal/deploy"
	"clamgate/internal/engine"
)

// Exit codes of engine prepare, as systemd reads an ExecCondition=: 1 skips
// the unit without failing it, 255 fails it.
const (
	exitNotAsked     = 1
	exitPrepareError = 255
)

// engineCmd is `clamgate engine prepare`, run as root by the Debian
// package's clamgate-engine.service (ExecCondition=+) before each start:
// when the configuration asks for that unit ([engine] unit), it writes
// clamd.conf into engine.UnitDir and gives the unit the memory budget
// sized from the database (systemctl set-property --runtime MemoryMax=);
// otherwise the unit is skipped, so that a configuration with an external
// clamd starts no engine.
func engineCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "prepare" {
		fmt.Fprintln(stderr, "usage: clamgate engine prepare --unit NAME [--config FILE]")
		return exitError
	}
	fs := newFlags("engine prepare", "")
	path := fs.String("config", deploy.GatewayConf, "TOML configuration `FILE`")
	unit := fs.String("unit", "", "the systemd service this runs for (%n), a `NAME`")
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, "clamgate: configuration error:")
		printErrors(stderr, err)
		return exitPrepareError
	}
	if cfg.Engine == nil || cfg.Engine.Unit != *unit || *unit == "" {
		fmt.Fprintf(stdout, "%s does not set [engine] unit = %q: %s is not needed\n", *path, *unit, *unit)
		return exitNotAsked
	}
	log := newLogger(stderr, cfg)
	// The unit's UMask= (0007, for clamd's socket) applies to this root
	// step too: what it writes must be readable by clamd's user.
	syscall.Umask(0o022)
	budget, err := engine.New(*cfg.Engine, log).PrepareUnit()
	if err != nil {
		log.Error("engine prepare", "unit", *unit, "err", err)
		return exitPrepareError
	}
	if err := setMemoryMax(ctx, *unit, budget); err != nil {
		log.Error("engine prepare: the memory budget", "unit", *unit, "err", err)
		return exitPrepareError
	}
	return 0
}

// setMemoryMax gives the unit its budget for this run: --runtime, so that
// it is sized afresh from the database at every start and gone at reboot.
func setMemoryMax(ctx context.Context, unit string, budget int64) error {
	out, err := exec.CommandContext(ctx, "systemctl", "set-property", "--runtime", unit,
		fmt.Sprintf("MemoryMax=%d", budget)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl set-property: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
