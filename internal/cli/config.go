package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/deploy"
	"clamgate/internal/startup"
	"clamgate/internal/tlsid"
)

// configSubs are config's subcommands.
var configSubs = []string{"check", "show"}

// configCmd is `clamgate config check|show`: what administrators type by
// habit before a restart (nginx -t, postfix check), and the effective
// configuration with every default spelt out.
//
// check is serve's start-up without serving: the same list of checks
// (internal/startup), run as the user the service runs as, so that what
// it accepts, serve accepts.
func configCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && isHelp(args[0]):
		fmt.Fprint(stdout, groupUsage(ctx, "config", configSubs))
		return 0
	case len(args) == 0 || !slices.Contains(configSubs, args[0]):
		fmt.Fprint(stderr, groupUsage(ctx, "config", configSubs))
		return exitError
	}
	fs := newFlags("config "+args[0], "")
	path := fs.String("config", deploy.GatewayConf, "configuration `FILE`")
	offline, timeout, asUser := new(bool), new(time.Duration), new(string)
	if args[0] == "check" {
		fs.BoolVar(offline, "offline", false, "parse and validate only; skip what needs the host (roots, directories, programs, the backend)")
		fs.DurationVar(timeout, "timeout", 5*time.Second, "longest wait for each backend's PONG")
		fs.StringVar(asUser, "as-user", "", "run the checks as this `USER` (default: the User= of clamgate.service, else the current user)")
	}
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	if args[0] == "check" && !*offline {
		who, err := checkUser(*asUser)
		if err != nil {
			fmt.Fprintln(stderr, "clamgate config check:", err)
			return exitConfig
		}
		if who.other && os.Geteuid() != 0 {
			fmt.Fprintf(stderr, "clamgate config check: note: checking as uid %d, not as the service's user %s: only root can switch users\n", os.Geteuid(), who.name)
			who = runAs{name: strconv.Itoa(os.Geteuid())}
		}
		if who.other {
			abs, _ := filepath.Abs(*path)
			return who.rerun(ctx, []string{"config", "check", "--config", abs, "--timeout", timeout.String(), "--as-user", who.name}, stdout, stderr)
		}
		return checkConfig(ctx, *path, who.name, *timeout, stdout, stderr)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, err)
		return exitConfig
	}
	printWarnings(stderr, cfg)
	if args[0] == "show" {
		out, err := cfg.Show()
		if err != nil {
			fmt.Fprintln(stderr, "clamgate config show:", err)
			return exitError
		}
		_, _ = stdout.Write(out)
		return 0
	}
	fmt.Fprintf(stdout, "%s: configuration ok (offline: the host was not checked)\n", *path)
	return 0
}

// checkConfig loads the file and runs serve's start-up checks, then asks
// each external backend for PONG (serve would wait for it; a check says
// it does not answer).
func checkConfig(ctx context.Context, path, user string, timeout time.Duration, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		printErrors(stderr, err)
		return exitConfig
	}
	printWarnings(stderr, cfg)
	var errs []error
	var failed *startup.Failed
	if err := startup.Run(ctx, cfg); errors.As(err, &failed) {
		errs = failed.Errs
	} else if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, pingBackends(ctx, cfg, timeout)...)
	errs = append(errs, expiringSoon(cfg)...)
	slices.SortStableFunc(errs, func(a, b error) int { return startup.LineOf(a) - startup.LineOf(b) })
	if len(errs) > 0 {
		printErrors(stderr, errors.Join(errs...))
		return exitConfig
	}
	fmt.Fprintf(stdout, "%s: configuration ok (checked as user %s)\n", path, user)
	return 0
}

// pingBackends asks each external clamd for its PONG. A managed engine is
// started by serve itself, so there is nothing to ask yet.
func pingBackends(ctx context.Context, cfg *config.Config, timeout time.Duration) []error {
	var errs []error
	var tlsDial clamd.DialFunc
	if cfg.BackendTLS != (tlsid.Files{}) {
		s, err := tlsid.Load("backend", cfg.BackendTLS)
		if err != nil {
			return []error{cfg.ErrorAt("backend.tls_cert", "%v", err)}
		}
		tlsDial = s.Dialer()
	}
	check := func(key, addr string) {
		c, err := clamd.NewTLS(addr, timeout, tlsDial)
		if err == nil {
			var reply string
			reply, err = c.Command(ctx, "PING")
			if err == nil && reply != "PONG" {
				err = fmt.Errorf("answered %q to PING", reply)
			}
		}
		if err != nil {
			errs = append(errs, cfg.ErrorAt(key, "%s does not answer: %v", addr, err))
		}
	}
	for _, b := range cfg.Backends {
		check("backend.address", b)
	}
	if cfg.Fallback != "" {
		check("backend.fallback", cfg.Fallback)
	}
	return errs
}

// printErrors writes one error a line: file:line: key: message.
func printErrors(w io.Writer, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			printErrors(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

// printWarnings writes the renamed keys the file still uses, one a line:
// file:line: key: warning: renamed NEW (...).
func printWarnings(w io.Writer, cfg *config.Config) {
	for _, e := range cfg.Warnings {
		warn := *e
		warn.Msg = "warning: " + warn.Msg
		fmt.Fprintln(w, &warn)
	}
}

// expiringSoon is what CheckTLS adds to the start-up check for config
// check alone: a certificate that expires within 14 days.
func expiringSoon(cfg *config.Config) []error {
	failing := map[string]bool{}
	for _, err := range startup.CheckTLS(cfg, false) {
		failing[err.Error()] = true
	}
	var soon []error
	for _, err := range startup.CheckTLS(cfg, true) {
		if !failing[err.Error()] {
			soon = append(soon, err)
		}
	}
	return soon
}
