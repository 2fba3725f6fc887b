// Package startup is serve's start-up checks, as one list: serve runs it
// before it binds or starts anything and refuses to start on any error;
// `clamgate config check` runs the same list, as the service's user,
// without serving. A check added here is therefore a refusal of both, and
// the parity test (internal/cli) fails until it has a case.
//
// Every check opens what serve will open, as the process running it: users
// and groups through the host's name service (the file keeps names), roots
// through policy.OpenRoot, directories by access(2) on the nearest
// existing ancestor, the database through sigdb. Nothing is created,
// bound or changed.
package startup

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/tlsid"
)

// Check is one start-up check. Key is the configuration key (or key
// prefix) its errors name; the errors themselves come from cfg.ErrorAt, so
// they read file:line: key: message.
type Check struct {
	Name string
	Run  func(ctx context.Context, cfg *config.Config) []error
}

// List is every start-up check, in the order serve meets what they check.
// To add one (the engine's reach checks, say), append it here: serve and
// config check both pick it up, and TestStartupParity asks for its case.
func List() []Check {
	return []Check{
		{Name: "users and groups", Run: accounts},
		{Name: "roots", Run: roots},
		{Name: "sockets", Run: sockets},
		{Name: "http", Run: httpAddress},
		{Name: "engine state directory", Run: stateDir},
		{Name: "engine program", Run: clamdProgram},
		{Name: "engine database", Run: engineDatabase},
		{Name: "watched database", Run: watchedDatabase},
		{Name: "tls files", Run: tlsFiles},
	}
}

// Failed is serve's refusal to start: every check's errors, in line order.
type Failed struct{ Errs []error }

func (f *Failed) Error() string { return errors.Join(f.Errs...).Error() }

// Unwrap lets errors.As find each *config.Error.
func (f *Failed) Unwrap() []error { return f.Errs }

// Run runs every check of List and returns a *Failed, or nil when all
// pass. Errors are sorted by line, so that they read as the file does.
func Run(ctx context.Context, cfg *config.Config) error {
	var errs []error
	for _, c := range List() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, c.Run(ctx, cfg)...)
	}
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b error) int { return LineOf(a) - LineOf(b) })
	return &Failed{Errs: errs}
}

// LineOf is the configuration line an error names, 0 for none.
func LineOf(err error) int {
	var e *config.Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

// tlsFiles: the certificates, keys and CAs of tls: listeners and backends
// parse, match and verify.
func tlsFiles(_ context.Context, cfg *config.Config) []error { return CheckTLS(cfg, false) }

// CheckTLS reads the TLS files as the gateway would: they parse, the key
// matches, the chain verifies; with soon, nothing expires within 14 days
// either (config check says so; serve starts with such a certificate and
// lets the expiry metric and alert speak).
func CheckTLS(c *config.Config, soon bool) []error {
	var errs []error
	files := c.TLSFiles()
	for _, key := range slices.Sorted(maps.Keys(files)) {
		in := tlsid.Inspect(files[key], time.Now())
		switch {
		case in.Err != nil:
			errs = append(errs, c.ErrorAt(key+".tls_cert", "%v", in.Err))
		case soon && in.Warning != "":
			errs = append(errs, c.ErrorAt(key+".tls_cert", "%s: %s", files[key].Cert, in.Warning))
		}
	}
	return errs
}
