package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Flags is the quick, flags-only configuration: one policy ("local") for
// every listener, that lets any local user who can open the socket scan
// streams, and paths under the allowed roots, but never send admin commands.
type Flags struct {
	Backend     string   // "" = run a managed clamd
	Listen      []string // clamd protocol: unix:/path or tcp:127.0.0.1:port
	ICAP        []string // ICAP (service "avscan"): tcp:127.0.0.1:1344
	Milter      []string // milter: unix:/path or tcp:127.0.0.1:port
	AllowRoots  []string
	SocketMode  string // octal, default 0660
	SocketGroup string // default: the gateway's own group
	MaxStream   string // e.g. 100M; "" = clamd's limit only
	WatchDB     string // database directory to watch (an external clamd's)
	StateDir    string // managed clamd's working directory
	Database    string // managed clamd's database directory
	HTTP        string // metrics and health: tcp:127.0.0.1:9310
	LogLevel    string
	LogFormat   string

	// AllowWritableRootAncestors: see policy.OpenRoot.
	AllowWritableRootAncestors bool
}

// FlagsPolicy is the policy name of flags-only mode.
const FlagsPolicy = "local"

// FromFlags builds a validated configuration from the quick flags.
func FromFlags(fl Flags) (*Config, error) {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, &Error{File: "flag", Key: "--" + flag, Msg: fmt.Sprintf(format, args...)})
	}
	f := &file{
		Backend: backendSection{Address: fl.Backend},
		Server:  serverSection{LogLevel: fl.LogLevel, LogFormat: fl.LogFormat, HTTP: fl.HTTP},
		Policy:  map[string]policySection{FlagsPolicy: {Roots: fl.AllowRoots, AllowWritableRootAncestors: fl.AllowWritableRootAncestors}},
	}
	if fl.WatchDB != "" {
		f.Database.Dir = fl.WatchDB
		if fi, err := os.Stat(fl.WatchDB); err != nil || !fi.IsDir() {
			bad("watch-db", "%q is not an existing directory", fl.WatchDB)
		}
	}
	if fl.Backend == "" {
		f.Engine = &engineSection{StateDir: fl.StateDir, Database: fl.Database}
	} else if err := CheckBackend(fl.Backend); err != nil {
		bad("backend", "%v", err)
	}
	mode := Mode(DefaultSocketMode)
	if fl.SocketMode != "" {
		m, err := ParseMode(fl.SocketMode)
		if err != nil {
			bad("socket-mode", "%v", err)
		}
		mode = Mode(m)
	}
	if fl.MaxStream != "" {
		n, err := ParseSize(fl.MaxStream)
		if err != nil {
			bad("max-object", "%v", err)
		}
		ps := f.Policy[FlagsPolicy]
		ps.MaxObject = Size(n)
		f.Policy[FlagsPolicy] = ps
	}
	if len(fl.Listen)+len(fl.ICAP)+len(fl.Milter) == 0 {
		bad("listen", "at least one --listen, --icap or --milter address (unix:/path or tcp:127.0.0.1:port) is required")
	}
	for proto, addrs := range map[string][]string{ProtoClamd: fl.Listen, ProtoICAP: fl.ICAP, ProtoMilter: fl.Milter} {
		for _, addr := range addrs {
			f.Listener = append(f.Listener, listenerSection{Address: addr, Protocol: proto, Policy: FlagsPolicy, Mode: mode, Group: fl.SocketGroup})
		}
	}
	slices.SortStableFunc(f.Listener, func(a, b listenerSection) int { return strings.Compare(a.Protocol, b.Protocol) })
	for _, r := range fl.AllowRoots {
		if fi, err := os.Stat(r); err != nil || !fi.IsDir() || !filepath.IsAbs(r) {
			bad("allow-root", "%q is not an existing absolute directory", r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	v := validator{file: "flags", lines: map[string]int{}}
	cfg := v.build(f)
	cfg.file, cfg.lines = v.file, v.lines
	if err := v.result(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// PolicyNames lists the policies in a stable order, for logs.
func (c *Config) PolicyNames() []string {
	var names []string
	for n := range c.Policies {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// PolicyFor returns the policy a listener serves.
func (c *Config) PolicyFor(l Listener) *Policy { return c.Policies[l.Policy] }
