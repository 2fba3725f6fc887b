package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/deploy"
	"clamgate/internal/tlsid"
)

// configCmd is `clamgate config check|show`: what administrators type by
// habit before a restart (nginx -t, postfix check), and the effective
// configuration with every default spelt out.
func configCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "check" && args[0] != "show") {
		fmt.Fprint(stderr, "usage: clamgate config check|show [--config FILE]\n")
		return exitError
	}
	fs := flag.NewFlagSet("config "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", deploy.GatewayConf, "configuration file")
	offline := fs.Bool("offline", false, "check: skip what needs the host (directories, programs, the backend)")
	timeout := fs.Duration("timeout", 5*time.Second, "check: longest wait for each backend's PONG")
	if err := fs.Parse(args[1:]); err != nil {
		return exitError
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if args[0] == "show" {
		out, err := cfg.Show()
		if err != nil {
			fmt.Fprintln(stderr, "clamgate config show:", err)
			return exitError
		}
		_, _ = stdout.Write(out)
		return 0
	}
	if !*offline {
		errs := cfg.CheckHost()
		errs = append(errs, pingBackends(ctx, cfg, *timeout)...)
		slices.SortStableFunc(errs, func(a, b error) int { return lineOf(a) - lineOf(b) })
		if len(errs) > 0 {
			printErrors(stderr, errors.Join(errs...))
			return 1
		}
	}
	fmt.Fprintf(stdout, "%s: configuration ok\n", *path)
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

func lineOf(err error) int {
	var e *config.Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
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
