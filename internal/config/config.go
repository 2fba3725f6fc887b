// Package config reads clamgate's TOML file (and the quick flags, which
// build the same structure) and validates it, naming the bad key and its
// line so that an administrator can fix it without guessing.
//
// A Config is data: names and values as the file gives them, with the
// defaults filled in. Nothing here asks the host (whether a user exists,
// a root opens, a certificate parses: internal/startup), so `config check
// --offline` judges the file alone; the gateway builds what it serves with
// (policy.Policy values, listen.Spec sockets, the dispatcher's options)
// from it. Keys (keys.go) says which keys a reload applies, and by what.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"clamgate/internal/addr"
	"clamgate/internal/tlsid"

	"github.com/pelletier/go-toml/v2"
)

// Config is the validated configuration the gateway runs with.
type Config struct {
	Backend  string   // the first of Backends; "" with Engine set
	Backends []string // unix:/path or tcp:host:port, all loading the same database
	Fallback string   // used only while every backend is down; "" = none
	// BackendTLS is the certificate, key and CA of tls: backends (another
	// clamgate); zero when none is tls:.
	BackendTLS     tlsid.Files
	HealthInterval time.Duration
	// BackendDownWait is how long a job waits once every backend has been
	// taken out for not answering (hung, not gone): then it fails.
	BackendDownWait time.Duration
	// EngineCgroup is an external clamd's cgroup v2 directory, read for the
	// engine memory metrics ("" = none).
	EngineCgroup string
	// SpoolDir holds streams on their way to a local clamd ("" = $TMPDIR).
	SpoolDir       string
	BackendTimeout time.Duration
	// StreamMaxLength is clamd's own StreamMaxLength. The gateway enforces
	// it on the announced chunk length, as clamd does, so that an oversize
	// stream is refused before its data is read.
	StreamMaxLength int64
	Engine          *Engine // managed clamd, or nil
	// MaxJobs is clamd's MaxThreads: the gateway runs one scan fewer at
	// once (ScanSlots), so that a thread is always free for PING, VERSION
	// and STATS. Reserve of them a busy client leaves to the others.
	MaxJobs, Reserve int
	// BulkSize is the size from which a scan counts as bulk.
	BulkSize int64
	// BulkCap is how many bulk scans may run at once while short work is
	// present.
	BulkCap       int
	ReadTimeout   time.Duration
	ShutdownGrace time.Duration
	LogLevel      string
	LogFormat     string // "text" or "json"
	Audit         bool   // one log line per scan
	// CommandTimeout and StreamTimeout bound a whole command line and a
	// whole INSTREAM: a client trickling bytes cannot hold a connection
	// longer.
	CommandTimeout, StreamTimeout time.Duration
	// HTTP serves /metrics, /healthz and /readyz: "tcp:127.0.0.1:9310"; "" = off.
	HTTP                 string
	HTTPAllowNonLoopback bool
	HTTPMaxConnections   int // status connections served at once; more wait in the kernel's backlog
	// SpoolBudget bounds the bytes all spool files hold at once; 0 = half
	// the spool file system's free space, measured at start.
	SpoolBudget int64
	// CacheEntries and CacheBytes bound the verdict cache; 0 entries = off.
	CacheEntries int
	CacheBytes   int64
	Listeners    []Listener
	Policies     map[string]*Policy
	Database     Database
	ICAP         ICAP   // settings of every protocol = "icap" listener
	Milter       Milter // settings of every protocol = "milter" listener

	// file and lines remember where each key was written, so that checks
	// made later against the host (`clamgate config check`) point at the
	// line to fix as the parser's own errors do.
	file  string
	lines map[string]int

	// Warnings name the renamed keys the file still uses, with their new
	// names (Renamed), in the file's order.
	Warnings []*Error
}

// ErrorAt is a configuration error found after loading, at key.
func (c *Config) ErrorAt(key, format string, args ...any) *Error {
	return &Error{File: c.file, Line: lineOf(c.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Listener is one socket and the client policy it serves.
type Listener struct {
	Address string      // unix:/path, tcp:host:port or tls:host:port
	Mode    os.FileMode // a unix socket's permissions
	// Owner and Group are a unix socket's, as written: names or numeric
	// ids, resolved on the host at start (startup.Accounts); "" = the
	// gateway's own.
	Owner, Group string
	// AllowNonLoopback must be set explicitly to bind TCP beyond loopback.
	AllowNonLoopback bool
	MaxConnections   int // connections served at once; more are closed at once
	Policy           string
	// Policies are all the policies a TLS listener serves (Policy is the
	// first); the client certificate chooses (internal/identity).
	Policies []string
	Protocol string // ProtoClamd, ProtoICAP or ProtoMilter
	// TLS is a tls: listener's certificate, key and client CA; zero else.
	TLS tlsid.Files
	// MaxPerUID bounds the connections one unix peer uid holds at once,
	// refused peers included, so that no user can fill the listener.
	MaxPerUID int
}

// Engine asks the gateway to run clamd itself.
type Engine struct {
	Clamd           string // clamd binary
	StateDir        string // clamd.conf, socket, logs
	Database        string // "" = /var/lib/clamav; "test" = the built-in test database
	MaxThreads      int
	StreamMaxLength int64
	User            string // user clamd runs as; "" = clamgate-engine when the gateway is root, else the gateway's own
	// Unit is the systemd service that runs clamd for the gateway (the
	// Debian package's clamgate-engine.service): systemd starts it as root,
	// `clamgate engine prepare` writes its clamd.conf and sizes its memory,
	// and the gateway only connects. "" = the gateway starts clamd itself.
	Unit string
	// Reload is [database] reload: "frugal" runs clamd with
	// ConcurrentDatabaseReload no (reloads keep one database in memory, and
	// the gateway holds requests meanwhile), "concurrent" with yes, "auto"
	// lets the engine choose from its memory (see engine.ReloadMode).
	Reload string
}

// file is the TOML document's shape.
type file struct {
	Backend  backendSection           `toml:"backend"`
	Engine   *engineSection           `toml:"engine"`
	Server   serverSection            `toml:"server"`
	Listener []listenerSection        `toml:"listener"`
	Policy   map[string]policySection `toml:"policy"`
	Database databaseSection          `toml:"database,omitempty"`
	ICAP     icapSection              `toml:"icap"`
	Milter   milterSection            `toml:"milter"`
}

type backendSection struct {
	Address         any      `toml:"address"` // a string or a list
	Fallback        string   `toml:"fallback,omitempty"`
	HealthInterval  Duration `toml:"health_interval"`
	DownWait        Duration `toml:"backend_down_wait"`
	MaxJobs         int      `toml:"max_jobs"`
	BulkCap         int      `toml:"bulk_cap"`
	BulkSize        Size     `toml:"bulk_size"`
	Cgroup          string   `toml:"cgroup,omitempty"`
	SpoolDir        string   `toml:"spool_dir"`
	Reserve         *int     `toml:"reserve"`
	Timeout         Duration `toml:"timeout"`
	StreamMaxLength Size     `toml:"stream_max_length,omitempty"`
	TLSCert         string   `toml:"tls_cert,omitempty"`
	TLSKey          string   `toml:"tls_key,omitempty"`
	TLSCA           string   `toml:"tls_ca,omitempty"`
	TLSMinVersion   string   `toml:"tls_min_version,omitempty"`
}

type engineSection struct {
	Clamd           string `toml:"clamd"`
	StateDir        string `toml:"state_dir"`
	Database        string `toml:"database,omitempty"`
	MaxThreads      int    `toml:"max_threads,omitempty"`
	StreamMaxLength Size   `toml:"stream_max_length,omitempty"`
	User            string `toml:"user,omitempty"`
	Unit            string `toml:"unit,omitempty"`
}

type serverSection struct {
	ReadTimeout          Duration `toml:"read_timeout"`
	CommandTimeout       Duration `toml:"command_timeout"`
	StreamTimeout        Duration `toml:"stream_timeout"`
	ShutdownGrace        Duration `toml:"shutdown_grace"`
	LogLevel             string   `toml:"log_level"`
	LogFormat            string   `toml:"log_format"`
	Audit                *bool    `toml:"audit"`
	HTTP                 string   `toml:"http,omitempty"`
	HTTPAllowNonLoopback bool     `toml:"http_allow_non_loopback"`
	HTTPMaxConnections   int      `toml:"http_max_connections"`
	SpoolBudget          Size     `toml:"spool_budget,omitempty"` // 0: derived at start (half the spool file system's free space)
	CacheEntries         *int     `toml:"cache_entries"`
	CacheBytes           Size     `toml:"cache_bytes"`
}

type listenerSection struct {
	Address          string `toml:"address"`
	Policy           string `toml:"policy"`
	Protocol         string `toml:"protocol"`
	Mode             Mode   `toml:"mode"`
	Owner            string `toml:"owner,omitempty"`
	Group            string `toml:"group,omitempty"`
	AllowNonLoopback bool   `toml:"allow_non_loopback"`
	MaxConnections   int    `toml:"max_connections"`
	MaxPerUID        int    `toml:"max_connections_per_uid"`

	Policies      []string `toml:"policies,omitempty"`
	TLSCert       string   `toml:"tls_cert,omitempty"`
	TLSKey        string   `toml:"tls_key,omitempty"`
	TLSClientCA   string   `toml:"tls_client_ca,omitempty"`
	TLSMinVersion string   `toml:"tls_min_version,omitempty"`
}

type policySection struct {
	Admin         bool     `toml:"admin"`
	Commands      []string `toml:"commands"`
	Roots         []string `toml:"roots,omitempty"`
	MaxObject     Size     `toml:"max_object"`
	MaxStream     Size     `toml:"max_stream,omitempty"` // renamed max_object
	MaxConcurrent int      `toml:"max_concurrent,omitempty"`
	MaxWait       Duration `toml:"max_wait"`
	MaxQueue      int      `toml:"max_queue"`
	MaxQueueBytes Size     `toml:"max_queue_bytes,omitempty"`
	Weight        int      `toml:"weight"`
	OnLimits      string   `toml:"on_limits"`
	Users         []string `toml:"users,omitempty"`
	Groups        []string `toml:"groups,omitempty"`
	TokensSHA256  []string `toml:"tokens_sha256,omitempty"` // HTTP bearer tokens, hashed (see http.go)
	Status        bool     `toml:"status"`                  // may read the HTTP status page

	AllowWritableRootAncestors bool `toml:"allow_writable_root_ancestors"`
	MaxWalkDepth               int  `toml:"max_walk_depth"`
	MaxDirEntries              int  `toml:"max_dir_entries"`

	TLSIdentities         []string `toml:"tls_identities,omitempty"`
	AllowAnonymousNetwork bool     `toml:"allow_anonymous_network"`
}

// Error is a configuration error at a key (and line, when from a file).
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
}

// Defaults shared by the file and the flags.
const (
	DefaultBackendTimeout = 2 * time.Minute
	DefaultHealthInterval = 2 * time.Second
	// DefaultBackendDownWait bounds how long a job waits on engines that
	// stopped answering (backend.backend_down_wait).
	DefaultBackendDownWait = 5 * time.Second
	DefaultMaxConnections  = 256
	DefaultReadTimeout     = 2 * time.Minute // clamd's own ReadTimeout is 120 s
	DefaultShutdownGrace   = 10 * time.Second
	DefaultSocketMode      = 0o660
	DefaultStreamMax       = 100 << 20 // clamd's default StreamMaxLength
)

const (
	// DefaultCommandTimeout is clamd's CommandReadTimeout: any client
	// sends its command at once.
	DefaultCommandTimeout = 30 * time.Second
	// DefaultHTTPMaxConnections bounds /metrics and health: a scraper and
	// a probe or two need no more, and each connection costs a descriptor.
	DefaultHTTPMaxConnections = 16
	// DefaultCacheEntries and DefaultCacheBytes bound the verdict cache:
	// about 200 bytes an entry, a few MiB for the verdicts of a busy day's
	// repeated attachments.
	DefaultCacheEntries = 20000
	DefaultCacheBytes   = 4 << 20
	// minStreamRate is the slowest stream a local client is expected to
	// send (bytes per second), for the default stream_timeout.
	minStreamRate = 256 << 10
)

// Load reads and validates a TOML configuration file.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, src)
}

// Parse validates a TOML document; name is used in error messages.
func Parse(name string, src []byte) (*Config, error) {
	var f file
	dec := toml.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	lines := keyLines(src)
	if err := dec.Decode(&f); err != nil {
		return nil, decodeError(name, lines, err)
	}
	v := validator{file: name, lines: lines}
	cfg := v.build(&f)
	cfg.file, cfg.lines, cfg.Warnings = name, lines, v.warns
	return cfg, v.result()
}

func decodeError(name string, lines map[string]int, err error) error {
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		var errs []error
		for _, e := range se.Errors {
			row, _ := e.Position()
			errs = append(errs, &Error{File: name, Line: row, Key: keyAt(lines, row, e.Key()), Msg: "unknown key"})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &Error{File: name, Line: row, Key: keyAt(lines, row, de.Key()), Msg: strings.TrimPrefix(de.Error(), "toml: ")}
	}
	return &Error{File: name, Msg: err.Error()}
}

// keyAt names a key the decoder reports without its array index
// ("listener.mode") the way the rest of the messages do ("listener[1].mode").
func keyAt(lines map[string]int, row int, key []string) string {
	plain := strings.Join(key, ".")
	for k, l := range lines {
		if l == row && strings.HasSuffix(k, "."+key[len(key)-1]) {
			return k
		}
	}
	return plain
}

type validator struct {
	file  string
	lines map[string]int
	errs  []error
	warns []*Error // renamed keys, still accepted (renames.go)
}

// result joins the errors in the order of the file's lines.
func (v *validator) result() error {
	slices.SortStableFunc(v.errs, func(a, b error) int {
		return a.(*Error).Line - b.(*Error).Line
	})
	return errors.Join(v.errs...)
}

func (v *validator) fail(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: lineOf(v.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) build(f *file) *Config {
	cfg := &Config{
		Fallback:             f.Backend.Fallback,
		HealthInterval:       f.Backend.HealthInterval.Or(DefaultHealthInterval),
		BackendDownWait:      f.Backend.DownWait.Or(DefaultBackendDownWait),
		EngineCgroup:         f.Backend.Cgroup,
		SpoolDir:             f.Backend.SpoolDir,
		BackendTimeout:       f.Backend.Timeout.Or(DefaultBackendTimeout),
		ReadTimeout:          f.Server.ReadTimeout.Or(DefaultReadTimeout),
		ShutdownGrace:        f.Server.ShutdownGrace.Or(DefaultShutdownGrace),
		LogLevel:             or(f.Server.LogLevel, "info"),
		LogFormat:            or(f.Server.LogFormat, "text"),
		Audit:                f.Server.Audit == nil || *f.Server.Audit,
		HTTP:                 f.Server.HTTP,
		HTTPAllowNonLoopback: f.Server.HTTPAllowNonLoopback,
		HTTPMaxConnections:   f.Server.HTTPMaxConnections,
		SpoolBudget:          int64(f.Server.SpoolBudget),
		CacheEntries:         DefaultCacheEntries,
		CacheBytes:           int64(f.Server.CacheBytes),
		Policies:             map[string]*Policy{},
	}
	v.checkServer(cfg)
	v.checkCache(cfg, f)
	v.backends(cfg, f.Backend.Address)
	v.checkBackend(cfg, f)
	v.backendTLS(cfg, f.Backend)
	cfg.Database = v.database(f.Database, cfg.Engine)
	v.jobs(cfg, f.Backend)
	if cfg.Engine != nil && f.Engine.MaxThreads == 0 {
		cfg.Engine.MaxThreads = cfg.MaxJobs // one key: backend.max_jobs
	}
	cfg.StreamMaxLength = int64(f.Backend.StreamMaxLength)
	policyDefault := cmp.Or(cfg.StreamMaxLength, DefaultStreamMax)
	if cfg.Engine != nil {
		// The managed clamd takes the largest object a policy allows.
		cfg.Engine.StreamMaxLength = cmp.Or(cfg.Engine.StreamMaxLength, largestObject(f.Policy))
		cfg.StreamMaxLength = cfg.Engine.StreamMaxLength
		policyDefault = min(DefaultStreamMax, cfg.StreamMaxLength)
	}
	if cfg.StreamMaxLength == 0 {
		cfg.StreamMaxLength = DefaultStreamMax
	}
	v.requestTimeouts(cfg, f.Server)
	for name, ps := range f.Policy {
		cfg.Policies[name] = v.policy(name, ps, cfg.StreamMaxLength, policyDefault)
	}
	if len(f.Listener) == 0 {
		v.fail("listener", "at least one [[listener]] is required")
	}
	for i, ls := range f.Listener {
		cfg.Listeners = append(cfg.Listeners, v.listener(i, ls, cfg.Policies))
	}
	cfg.ICAP = v.icap(f.ICAP)
	cfg.Milter = v.milter(f.Milter)
	v.checkFrontLimits(cfg)
	v.checkHTTPListeners(cfg)
	return cfg
}

func (v *validator) checkServer(cfg *Config) {
	if cfg.HTTP != "" {
		a, err := addr.Parse(cfg.HTTP)
		if err != nil || a.Network != addr.TCP {
			v.fail("server.http", "%q: want tcp:127.0.0.1:port", cfg.HTTP)
		} else if err := checkLoopback(a.Address, cfg.HTTPAllowNonLoopback); err != nil {
			v.fail("server.http", "%v", err)
		}
	}
	if cfg.HTTPMaxConnections < 0 {
		v.fail("server.http_max_connections", "must not be negative")
	}
	if cfg.HTTPMaxConnections == 0 {
		cfg.HTTPMaxConnections = DefaultHTTPMaxConnections
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.LogLevel) {
		v.fail("server.log_level", "%q is not one of debug, info, warn, error", cfg.LogLevel)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		v.fail("server.log_format", "%q is not text or json", cfg.LogFormat)
	}
}

// requestTimeouts derives the total time a command line and a stream may
// take: a command, what clamd allows (no more than read_timeout); a
// stream, read_timeout plus the largest stream at minStreamRate.
func (v *validator) requestTimeouts(cfg *Config, s serverSection) {
	cfg.CommandTimeout = s.CommandTimeout.Or(min(cfg.ReadTimeout, DefaultCommandTimeout))
	cfg.StreamTimeout = s.StreamTimeout.Or(cfg.ReadTimeout + time.Duration(cfg.StreamMaxLength/minStreamRate)*time.Second)
}

func (v *validator) backends(cfg *Config, addr any) {
	list, err := addressList(addr)
	if err != nil {
		v.fail("backend.address", "%v", err)
	}
	cfg.Backends = list
	if len(list) > 0 {
		cfg.Backend = list[0]
	}
}

func (v *validator) checkBackend(cfg *Config, f *file) {
	switch {
	case f.Engine != nil && cfg.Backend != "":
		v.fail("backend.address", "set either [backend] address or [engine] (a managed clamd), not both")
	case f.Engine != nil:
		cfg.Engine = v.engine(f.Engine)
	case cfg.Backend == "":
		v.fail("backend.address", "required (unix:/path or tcp:host:port), or add an [engine] section for a managed clamd")
	default:
		for _, b := range cfg.Backends {
			if err := CheckBackend(b); err != nil {
				v.fail("backend.address", "%v", err)
			}
		}
	}
	if cfg.Fallback != "" {
		if err := CheckBackend(cfg.Fallback); err != nil {
			v.fail("backend.fallback", "%v", err)
		}
	}
}

// CheckBackend validates a backend address.
func CheckBackend(address string) error {
	_, err := addr.Parse(address)
	return err
}

func (v *validator) engine(es *engineSection) *Engine {
	e := &Engine{
		Clamd:           or(es.Clamd, "/usr/sbin/clamd"),
		StateDir:        or(es.StateDir, "/run/clamgate/engine"),
		Database:        es.Database,
		MaxThreads:      es.MaxThreads,
		StreamMaxLength: int64(es.StreamMaxLength),
		User:            es.User,
		Unit:            es.Unit,
	}
	v.engineUnit(e)
	if e.MaxThreads == 0 {
		e.MaxThreads = 10
	} else {
		v.renamed("engine.max_threads", "engine.max_threads", "backend.max_jobs")
	}
	if e.MaxThreads < 1 || e.MaxThreads > 256 {
		v.fail("engine.max_threads", "%d is outside 1..256", e.MaxThreads)
	}
	if e.StreamMaxLength != 0 {
		v.renamed("engine.stream_max_length", "engine.stream_max_length", "max_object in the policies (the managed clamd takes the largest)")
	}
	if !filepath.IsAbs(e.StateDir) {
		v.fail("engine.state_dir", "%q is not an absolute path", e.StateDir)
	}
	return e
}

// engineUnit checks [engine] unit: a service name, and no user of the
// gateway's choosing, since the unit's User= runs clamd.
func (v *validator) engineUnit(e *Engine) {
	if e.Unit == "" {
		return
	}
	if !strings.HasSuffix(e.Unit, ".service") || strings.ContainsAny(e.Unit, "/ ") {
		v.fail("engine.unit", "%q is not a service name like clamgate-engine.service", e.Unit)
	}
	if e.User != "" {
		v.fail("engine.user", "%q: the engine unit %s runs clamd as its own User=; leave user unset", e.User, e.Unit)
	}
}

func (v *validator) listener(i int, ls listenerSection, policies map[string]*Policy) Listener {
	key := fmt.Sprintf("listener[%d]", i)
	l := Listener{Policy: ls.Policy, Protocol: or(ls.Protocol, ProtoClamd),
		Address: ls.Address, Mode: os.FileMode(ls.Mode), AllowNonLoopback: ls.AllowNonLoopback}
	if ls.Mode == 0 {
		l.Mode = DefaultSocketMode
	}
	l.MaxConnections = ls.MaxConnections
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConnections < 0 {
		v.fail(key+".max_connections", "must not be negative")
	}
	l.MaxPerUID = ls.MaxPerUID
	if l.MaxPerUID == 0 {
		l.MaxPerUID = max(1, l.MaxConnections/2)
	}
	if l.MaxPerUID < 0 {
		v.fail(key+".max_connections_per_uid", "must not be negative")
	}
	v.listenerPolicies(key, ls, &l, policies)
	if !slices.Contains([]string{ProtoClamd, ProtoICAP, ProtoMilter, ProtoHTTP}, l.Protocol) {
		v.fail(key+".protocol", "%q is not one of clamd, icap, milter, http", ls.Protocol)
	}
	a, err := addr.Parse(ls.Address)
	switch {
	case err != nil:
		v.fail(key+".address", "%v", err)
	case a.Network == addr.Unix:
		v.owner(ls, &l)
	case a.Network == addr.TCP:
		if err := checkLoopback(a.Address, ls.AllowNonLoopback); err != nil {
			v.fail(key+".address", "%v", err)
		}
		v.noCredentials(key, l, policies)
	case a.Network == addr.TLS:
		v.listenerTLS(key, ls, &l, a.Address, policies)
		v.noCredentials(key, l, policies)
	}
	if err == nil && a.Network != addr.TLS && len(l.Policies) > 1 {
		v.fail(key+".policies", "only a tls: listener serves several policies (the client certificate chooses): serve one here")
	}
	if a.Network != addr.TLS && (ls.TLSCert != "" || ls.TLSKey != "" || ls.TLSClientCA != "" || ls.TLSMinVersion != "") {
		v.fail(key+".tls_cert", "tls_cert, tls_key, tls_client_ca and tls_min_version are for a tls:HOST:PORT address")
	}
	return l
}

// owner keeps a unix socket's owner and group as written (names, or
// numeric ids): whether the host knows them is a start-up check
// (internal/startup), so that --offline checks the file on any host.
func (v *validator) owner(ls listenerSection, l *Listener) {
	l.Owner, l.Group = ls.Owner, ls.Group
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (v *validator) checkCache(cfg *Config, f *file) {
	if n := f.Server.CacheEntries; n != nil {
		cfg.CacheEntries = *n
	}
	if cfg.CacheEntries < 0 {
		v.fail("server.cache_entries", "must not be negative (0 turns the verdict cache off)")
	}
	if cfg.CacheBytes < 0 {
		v.fail("server.cache_bytes", "must not be negative")
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
}
