// Package cli implements clamgate's subcommands; cmd/clamgate only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"clamgate/internal/buildinfo"
	"clamgate/internal/config"
	"clamgate/internal/deploy"
	"clamgate/internal/gateway"
	"clamgate/internal/milter"
	"clamgate/internal/startup"
)

// Main runs one subcommand and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage(ctx))
		return exitError
	}
	if run, ok := commands()[args[0]]; ok {
		return run(ctx, args[1:], stdout, stderr)
	}
	if args[0] == "engine" { // run by the packaged clamgate-engine.service, not by hand: not in the usage
		return engineCmd(ctx, args[1:], stdout, stderr)
	}
	switch {
	case args[0] == "--version":
		return versionCmd(ctx, nil, stdout, stderr)
	case isHelp(args[0]) && len(args) > 1:
		return Main(ctx, append(args[1:], "--help"), stdout, stderr)
	case isHelp(args[0]):
		fmt.Fprint(stdout, topUsage(ctx))
		return 0
	}
	fmt.Fprintf(stderr, "clamgate: unknown command %q\n\n%s", args[0], topUsage(ctx))
	return exitError
}

type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// commands is what Main dispatches; manualCommands documents each
// (TestHelpAgrees holds the two lists to each other).
func commands() map[string]command {
	return map[string]command{
		"serve": serveCmd, "scan": scanCmd, "db": dbCmd, "doctor": doctorCmd, "deploy": deployCmd,
		"config": configCmd, "manual": manualCmd, "version": versionCmd,
		"token": tokenCmd, "tls": tlsCmd,
	}
}

func versionCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	fmt.Fprint(stdout, buildinfo.Read())
	return 0
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "")
	var fl config.Flags
	var listens, icaps, milters, roots multi
	cfgPath := fs.String("config", "", "TOML configuration `FILE` (default: "+deploy.GatewayConf+", unless the flags below describe the gateway)")
	fs.StringVar(&fl.Backend, "backend", "", "clamd to use, at `ADDR`: unix:/path or tcp:host:port (default: run a managed clamd)")
	fs.Var(&listens, "listen", "socket to serve, at `ADDR`: unix:/path or tcp:127.0.0.1:port (repeatable)")
	fs.Var(&icaps, "icap", "ICAP service avscan for squid, at `ADDR`: tcp:127.0.0.1:1344 (repeatable)")
	fs.Var(&milters, "milter", "milter for postfix/sendmail, at `ADDR`: unix:/path or tcp:127.0.0.1:port (repeatable)")
	fs.Var(&roots, "allow-root", "a `DIR` under which path scans are allowed (repeatable)")
	fs.BoolVar(&fl.AllowWritableRootAncestors, "allow-writable-root-ancestors", false, "start even if a directory above an --allow-root is writable by a non-root user (amavis owns /var/lib/amavis)")
	fs.StringVar(&fl.SocketMode, "socket-mode", "0660", "`MODE` of the unix sockets")
	fs.StringVar(&fl.SocketGroup, "socket-group", "", "`GROUP` of the unix sockets (default: the gateway's)")
	fs.StringVar(&fl.MaxStream, "max-object", "", "largest object accepted, a `SIZE` such as 100M (default: clamd's limit)")
	renamedFlag(fs, "max-stream", "max-object", stderr)
	fs.StringVar(&fl.WatchDB, "watch-db", "", "signature `DIR` to watch: reload clamd when freshclam updates it (default: the managed clamd's)")
	fs.StringVar(&fl.StateDir, "state-dir", "/run/clamgate/engine", "managed clamd: its working `DIR`")
	fs.StringVar(&fl.Database, "database", "", "managed clamd: its signature `DIR` (default: /var/lib/clamav; \"test\": the built-in EICAR-only test database)")
	fs.StringVar(&fl.HTTP, "http", "", "serve /metrics, /healthz and /readyz at `ADDR`: tcp:127.0.0.1:9310")
	fs.StringVar(&fl.LogLevel, "log-level", "info", "`LEVEL`: debug, info, warn or error")
	fs.StringVar(&fl.LogFormat, "log-format", "text", "log `FORMAT`: text or json")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	fl.Listen, fl.ICAP, fl.Milter, fl.AllowRoots = listens, icaps, milters, roots
	if *cfgPath == "" && !quickFlags(fs) {
		*cfgPath = deploy.GatewayConf
	}
	cfg, err := loadConfig(*cfgPath, fl, fs)
	if err != nil {
		fmt.Fprintln(stderr, "clamgate: configuration error:")
		printErrors(stderr, err)
		return exitConfig
	}
	log := newLogger(stderr, cfg)
	tuneGC()
	// Process-wide, so set here, once, and not by the gateway (which tests
	// start many times).
	milter.RouteLibraryLog(log)
	for _, w := range cfg.Warnings {
		log.Warn("renamed configuration key", "where", fmt.Sprintf("%s:%d", w.File, w.Line), "key", w.Key, "warning", w.Msg)
	}
	log.Info("clamgate starting", "version", buildinfo.Read().Version(), "listeners", len(cfg.Listeners), "policies", cfg.PolicyNames())
	hup := hangups()
	defer signal.Stop(hup)
	err = gateway.Run(ctx, cfg, log, gateway.ReloadOn(hup, reloadFrom(*cfgPath, fl, fs)))
	var refused *startup.Failed
	switch {
	case errors.As(err, &refused):
		log.Error("clamgate cannot start: the configuration does not fit this host (clamgate config check says the same)", "errors", len(refused.Errs))
		fmt.Fprintln(stderr, "clamgate: configuration error:")
		printErrors(stderr, err)
		return exitConfig
	case err != nil:
		log.Error("clamgate stopped", "err", err)
		return 1
	}
	return 0
}

// quickFlags reports whether serve was given flags that describe a
// gateway (flags-only mode) rather than only how to log.
func quickFlags(fs *flag.FlagSet) bool {
	quick := false
	fs.Visit(func(f *flag.Flag) { quick = quick || (f.Name != "log-level" && f.Name != "log-format") })
	return quick
}

// renamedFlag accepts a flag's old name for one release, saying the new
// one on stderr (config.Renamed lists them for the man page).
func renamedFlag(fs *flag.FlagSet, old, current string, stderr io.Writer) {
	f := fs.Lookup(current)
	fs.Func(old, "renamed --"+current+"; accepted until the next release", func(v string) error {
		fmt.Fprintf(stderr, "clamgate: --%s is renamed --%s; the old name is accepted until the next release\n", old, current)
		return f.Value.Set(v)
	})
}

func loadConfig(path string, fl config.Flags, fs *flag.FlagSet) (*config.Config, error) {
	if path == "" {
		return config.FromFlags(fl)
	}
	var clash []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "config" && f.Name != "log-level" && f.Name != "log-format" {
			clash = append(clash, "--"+f.Name)
		}
	})
	if len(clash) > 0 {
		return nil, errors.New("--config cannot be combined with " + strings.Join(clash, ", "))
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { // explicit log flags override the file
		switch f.Name {
		case "log-level":
			cfg.LogLevel = fl.LogLevel
		case "log-format":
			cfg.LogFormat = fl.LogFormat
		}
	})
	return cfg, nil
}

// hangups delivers SIGHUP, the reload request (systemctl reload), until
// signal.Stop; serve alone catches it, so that the other commands still
// end on a hangup, and catches it until it returns, so that a reload
// during the shutdown drain does not kill it.
func hangups() chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch
}

// reloadFrom re-reads the configuration as serve first read it (log flags
// included); nil in flags-only mode, where there is nothing to re-read.
func reloadFrom(path string, fl config.Flags, fs *flag.FlagSet) func() (*config.Config, error) {
	if path == "" {
		return nil
	}
	return func() (*config.Config, error) { return loadConfig(path, fl, fs) }
}

func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Exit codes shared with clamdscan.
const (
	exitClean    = 0
	exitInfected = 1
	exitError    = 2
	// exitConfig is serve's and config check's answer to a configuration
	// that does not parse or does not fit the host: EX_CONFIG, which
	// systemd shows as status=78/CONFIG (and which a unit's
	// RestartPreventExitStatus= can name, so that no restart loop follows).
	exitConfig = 78
)

// tuneGC trades a little memory for CPU, unless GOGC or GOMEMLIMIT say
// otherwise. The gateway's live heap is a few MiB, but every scanned byte
// passes through short-lived buffers (the milter library allocates one per
// packet): collecting at 5x the live heap instead of 2x cut its CPU per
// 5 MiB message from 26 to 18 ms, and the soft limit keeps the heap well
// below the unit's MemoryMax however busy it gets.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(gcSoftLimit)
	}
}

// gcSoftLimit is the heap size past which the collector works harder.
const gcSoftLimit = 48 << 20
