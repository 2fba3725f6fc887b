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
	"clamgate/internal/gateway"
	"clamgate/internal/milter"
)

const usage = `clamgate: one hardened clamd gateway for every local ClamAV client

usage:
  clamgate serve --config FILE
  clamgate serve [--backend unix:/run/clamav/clamd.sock] --listen unix:/run/clamgate/clamd.sock
                 [--listen tcp:127.0.0.1:3310] [--icap tcp:127.0.0.1:1344] [--milter unix:PATH]
                 [--allow-root DIR]... [--allow-writable-root-ancestors] [--socket-mode 0660]
                 [--socket-group GROUP] [--max-stream 100M] [--watch-db /var/lib/clamav]
                 [--http tcp:127.0.0.1:9310]
                 (without --backend, clamgate runs and supervises its own clamd)
  clamgate scan [--gateway ADDR] [--fdpass] [--quiet] [--cert FILE --key FILE --ca FILE] PATH...|-
  clamgate db [--dir /var/lib/clamav] [--clamd ADDR] [--max-age 24h] [--json]
  clamgate doctor [--json] [--config FILE] [--root DIR]
  clamgate deploy plan|apply|rollback [--root DIR] [--config FILE] [--image REF] [--allow-moving-tag]
  clamgate config check|show [--config FILE]
  clamgate tls new-ca|issue --dir DIR [--name NAME] [--id dns:HOST|uri:URI|ip:ADDR|cn:NAME]... [--days N]
  clamgate version
`

// Main runs one subcommand and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stderr)
	case "scan":
		return scanCmd(ctx, args[1:], stdout, stderr)
	case "db":
		return dbCmd(ctx, args[1:], stdout, stderr)
	case "doctor":
		return doctorCmd(ctx, args[1:], stdout, stderr)
	case "deploy":
		return deployCmd(ctx, args[1:], stdout, stderr)
	case "config":
		return configCmd(ctx, args[1:], stdout, stderr)
	case "manual":
		return manualCmd(ctx, args[1:], stdout, stderr)
	case "tls":
		return tlsCmd(args[1:], stdout, stderr)
	case "engine": // run by the packaged clamgate-engine.service, not by hand
		return engineCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprint(stdout, buildinfo.Read())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "clamgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func serveCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var fl config.Flags
	var listens, icaps, milters, roots multi
	cfgPath := fs.String("config", "", "TOML configuration file")
	fs.StringVar(&fl.Backend, "backend", "", "clamd to use: unix:/path or tcp:host:port (default: run a managed clamd)")
	fs.Var(&listens, "listen", "socket to serve: unix:/path or tcp:127.0.0.1:port (repeatable)")
	fs.Var(&icaps, "icap", "ICAP service avscan for squid: tcp:127.0.0.1:1344 (repeatable)")
	fs.Var(&milters, "milter", "milter for postfix/sendmail: unix:/path or tcp:127.0.0.1:port (repeatable)")
	fs.Var(&roots, "allow-root", "directory under which path scans are allowed (repeatable)")
	fs.BoolVar(&fl.AllowWritableRootAncestors, "allow-writable-root-ancestors", false, "start even if a directory above an --allow-root is writable by a non-root user (amavis owns /var/lib/amavis)")
	fs.StringVar(&fl.SocketMode, "socket-mode", "0660", "mode of the unix sockets")
	fs.StringVar(&fl.SocketGroup, "socket-group", "", "group of the unix sockets (default: the gateway's)")
	fs.StringVar(&fl.MaxStream, "max-stream", "", "largest INSTREAM accepted, e.g. 100M (default: clamd's limit)")
	fs.StringVar(&fl.WatchDB, "watch-db", "", "signature directory to watch: reload clamd when freshclam updates it (default: the managed clamd's)")
	fs.StringVar(&fl.StateDir, "state-dir", "/run/clamgate/engine", "managed clamd: working directory")
	fs.StringVar(&fl.Database, "database", "", "managed clamd: signature directory (default: /var/lib/clamav; \"test\": the built-in EICAR-only test database)")
	fs.StringVar(&fl.HTTP, "http", "", "serve /metrics, /healthz and /readyz: tcp:127.0.0.1:9310")
	fs.StringVar(&fl.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&fl.LogFormat, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fl.Listen, fl.ICAP, fl.Milter, fl.AllowRoots = listens, icaps, milters, roots
	cfg, err := loadConfig(*cfgPath, fl, fs)
	if err != nil {
		fmt.Fprintln(stderr, "clamgate: configuration error:\n"+indent(err.Error()))
		return 2
	}
	log := newLogger(stderr, cfg)
	tuneGC()
	// Process-wide, so set here, once, and not by the gateway (which tests
	// start many times).
	milter.RouteLibraryLog(log)
	log.Info("clamgate starting", "version", buildinfo.Read().Version(), "listeners", len(cfg.Listeners), "policies", cfg.PolicyNames())
	hup := hangups()
	defer signal.Stop(hup)
	if err := gateway.Run(ctx, cfg, log, gateway.ReloadOn(hup, reloadFrom(*cfgPath, fl, fs))); err != nil {
		log.Error("clamgate stopped", "err", err)
		return 1
	}
	return 0
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

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// Exit codes shared with clamdscan.
const (
	exitClean    = 0
	exitInfected = 1
	exitError    = 2
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
