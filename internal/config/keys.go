package config

import (
	"reflect"
	"slices"
)

// Applier is what takes a live key's new value when the gateway reloads.
type Applier string

// What a reload applies a live key with (internal/gateway/reload.go).
// Scans in progress finish under what they started with.
const (
	// ApplyDispatcher: the dispatcher is reconfigured (scan.Options); jobs
	// admitted from then on, and those still waiting, take the new value.
	ApplyDispatcher Applier = "dispatcher"
	// ApplyRoute: the listener's route is rebuilt (its policies, front and
	// slots); new connections are served by it, and its existing ones
	// close once their request is done.
	ApplyRoute Applier = "route"
	// ApplySocket: the listening socket is re-permissioned in place.
	ApplySocket Applier = "socket"
	// ApplyFront: the protocol's front is rebuilt, and every listener of
	// that protocol rerouted to it.
	ApplyFront Applier = "front"
	// ApplyServer: the server's own setting, read at the next shutdown.
	ApplyServer Applier = "server"
)

// Key is one key of the file and how a running gateway takes a new value
// of it: live (Live names what applies it), or at the next restart only.
type Key struct {
	Path string  // as TestReference names keys: backend.address, listener.mode, policy.*.weight
	Live Applier // "" = restart-only
	// value reads a restart-only key's effective value from a Config and
	// keep gives next the running one; nil for live keys.
	value func(*Config) any
	keep  func(running, next *Config)
}

// Keys classifies every key of the file; TestKeys fails when a key of the
// file is missing here or a path here names no key. Restart-only: the
// backend pool, the managed clamd and the database watcher are built once
// at start, the HTTP socket may be one systemd passed, and the logger, the
// audit observer, the spool budget and the verdict cache are wired into
// everything.
var Keys = slices.Concat(backendKeys, engineKeys, serverKeys, listenerKeys, policyKeys, databaseKeys, frontKeys)

var backendKeys = []Key{
	restart("backend.address", func(c *Config) any { return &c.Backends }),
	restart("backend.fallback", func(c *Config) any { return &c.Fallback }),
	restart("backend.health_interval", func(c *Config) any { return &c.HealthInterval }),
	restart("backend.backend_down_wait", func(c *Config) any { return &c.BackendDownWait }),
	live("backend.max_jobs", ApplyDispatcher),
	live("backend.bulk_cap", ApplyDispatcher),
	live("backend.bulk_size", ApplyDispatcher),
	restart("backend.cgroup", func(c *Config) any { return &c.EngineCgroup }),
	restart("backend.spool_dir", func(c *Config) any { return &c.SpoolDir }),
	live("backend.reserve", ApplyDispatcher),
	restart("backend.timeout", func(c *Config) any { return &c.BackendTimeout }),
	restart("backend.stream_max_length", func(c *Config) any { return &c.StreamMaxLength }),
	// The files' names; their contents are re-read at every reload.
	restart("backend.tls_cert", func(c *Config) any { return &c.BackendTLS.Cert }),
	restart("backend.tls_key", func(c *Config) any { return &c.BackendTLS.Key }),
	restart("backend.tls_ca", func(c *Config) any { return &c.BackendTLS.CA }),
	restart("backend.tls_min_version", func(c *Config) any { return &c.BackendTLS.MinVersion }),
}

// engineKeys: clamd runs with what it started with, so any change keeps
// the whole running [engine] (its derived fields included).
var engineKeys = []Key{
	engineKey("engine.clamd", func(e *Engine) any { return e.Clamd }),
	engineKey("engine.state_dir", func(e *Engine) any { return e.StateDir }),
	engineKey("engine.database", func(e *Engine) any { return e.Database }),
	// backend.max_jobs sets it when the file does not.
	engineKey("engine.max_threads", func(e *Engine) any { return e.MaxThreads }),
	// The largest max_object of the policies sets it when the file does not.
	engineKey("engine.stream_max_length", func(e *Engine) any { return e.StreamMaxLength }),
	engineKey("engine.user", func(e *Engine) any { return e.User }),
	engineKey("engine.unit", func(e *Engine) any { return e.Unit }),
}

var serverKeys = []Key{
	live("server.read_timeout", ApplyFront),
	live("server.command_timeout", ApplyFront),
	live("server.stream_timeout", ApplyFront),
	live("server.shutdown_grace", ApplyServer),
	restart("server.log_level", func(c *Config) any { return &c.LogLevel }),
	restart("server.log_format", func(c *Config) any { return &c.LogFormat }),
	restart("server.audit", func(c *Config) any { return &c.Audit }),
	restart("server.http", func(c *Config) any { return &c.HTTP }),
	restart("server.http_allow_non_loopback", func(c *Config) any { return &c.HTTPAllowNonLoopback }),
	restart("server.http_max_connections", func(c *Config) any { return &c.HTTPMaxConnections }),
	restart("server.spool_budget", func(c *Config) any { return &c.SpoolBudget }),
	restart("server.cache_entries", func(c *Config) any { return &c.CacheEntries }),
	restart("server.cache_bytes", func(c *Config) any { return &c.CacheBytes }),
}

// listenerKeys: a listener added is bound, one removed closed; a kept one
// is rerouted when anything but its socket's rights changes.
var listenerKeys = []Key{
	live("listener.address", ApplyRoute),
	live("listener.policy", ApplyRoute),
	live("listener.protocol", ApplyRoute),
	live("listener.mode", ApplySocket),
	live("listener.owner", ApplySocket),
	live("listener.group", ApplySocket),
	live("listener.allow_non_loopback", ApplyRoute),
	live("listener.max_connections", ApplyRoute),
	live("listener.max_connections_per_uid", ApplyRoute),
	live("listener.policies", ApplyRoute),
	live("listener.tls_cert", ApplyRoute),
	live("listener.tls_key", ApplyRoute),
	live("listener.tls_client_ca", ApplyRoute),
	live("listener.tls_min_version", ApplyRoute),
}

// policyKeys: what a front enforces reroutes the listeners serving the
// policy; what the dispatcher enforces by the client's name does not.
var policyKeys = []Key{
	live("policy.*.admin", ApplyRoute),
	live("policy.*.commands", ApplyRoute),
	live("policy.*.roots", ApplyRoute),
	live("policy.*.max_object", ApplyRoute),
	live("policy.*.max_stream", ApplyRoute),
	live("policy.*.max_concurrent", ApplyDispatcher),
	live("policy.*.max_wait", ApplyDispatcher),
	live("policy.*.max_queue", ApplyDispatcher),
	live("policy.*.max_queue_bytes", ApplyDispatcher),
	live("policy.*.weight", ApplyDispatcher),
	live("policy.*.on_limits", ApplyDispatcher),
	live("policy.*.users", ApplyRoute),
	live("policy.*.groups", ApplyRoute),
	live("policy.*.tokens_sha256", ApplyRoute),
	live("policy.*.status", ApplyRoute),
	live("policy.*.allow_writable_root_ancestors", ApplyRoute),
	live("policy.*.max_walk_depth", ApplyRoute),
	live("policy.*.max_dir_entries", ApplyRoute),
	live("policy.*.tls_identities", ApplyRoute),
	live("policy.*.allow_anonymous_network", ApplyRoute),
}

// databaseKeys: the watcher and the reload mode are set up once.
var databaseKeys = []Key{
	databaseKey("database.dir", func(c *Config) any { return &c.Database.Dir }),
	databaseKey("database.watch", func(c *Config) any { return &c.Database.Watch }),
	databaseKey("database.reload", func(c *Config) any { return &c.Database.Reload }),
	databaseKey("database.settle", func(c *Config) any { return &c.Database.Settle }),
	databaseKey("database.max_age", func(c *Config) any { return &c.Database.MaxAge }),
	// The reload's turns across pods are set up once, at start.
	restart("database.stagger", func(c *Config) any { return &c.Database.Stagger }),
	restart("database.stagger_lease", func(c *Config) any { return &c.Database.StaggerLease }),
	restart("database.stagger_wait", func(c *Config) any { return &c.Database.StaggerWait }),
	restart("database.stagger_unready", func(c *Config) any { return &c.Database.StaggerUnready }),
	restart("database.stagger_credentials", func(c *Config) any { return &c.Database.StaggerCredentials }),
}

var frontKeys = []Key{
	live("icap.service", ApplyFront),
	live("icap.preview", ApplyFront),
	live("icap.max_object", ApplyFront),
	live("icap.over_limit", ApplyFront),
	live("icap.on_failure", ApplyFront),
	live("icap.options_ttl", ApplyFront),
	live("icap.max_connections", ApplyFront),
	live("icap.request_timeout", ApplyFront),
	live("icap.transfer_preview", ApplyFront),
	live("icap.transfer_ignore", ApplyFront),
	live("icap.transfer_complete", ApplyFront),
	live("icap.spool_dir", ApplyFront),
	live("milter.on_infected", ApplyFront),
	live("milter.on_failure", ApplyFront),
	live("milter.reject_message", ApplyFront),
	live("milter.add_header", ApplyFront),
	live("milter.max_size", ApplyFront),
	live("milter.over_limit", ApplyFront),
}

func live(path string, a Applier) Key { return Key{Path: path, Live: a} }

// restart is a restart-only key whose value is the field field points at.
func restart(path string, field func(*Config) any) Key {
	return Key{Path: path,
		value: func(c *Config) any { return reflect.ValueOf(field(c)).Elem().Interface() },
		keep: func(running, next *Config) {
			reflect.ValueOf(field(next)).Elem().Set(reflect.ValueOf(field(running)).Elem())
		}}
}

// databaseKey is a restart-only [database] key, which the managed clamd's
// settings follow too.
func databaseKey(path string, field func(*Config) any) Key {
	k := restart(path, field)
	keep := k.keep
	k.keep = func(running, next *Config) { keep(running, next); next.Engine = running.Engine }
	return k
}

func engineKey(path string, field func(*Engine) any) Key {
	return Key{Path: path,
		value: func(c *Config) any {
			if c.Engine == nil {
				return nil
			}
			return field(c.Engine)
		},
		keep: func(running, next *Config) { next.Engine = running.Engine }}
}

// Restart reports whether the key needs a restart to change.
func (k Key) Restart() bool { return k.Live == "" }

// KeepRestartOnly gives next the running values of the keys that only a
// restart can change (Keys), and returns those whose value next wanted to
// change, in the table's order. Everything else in next applies live.
func KeepRestartOnly(running, next *Config) []string {
	var changed []string
	fileJobs, fileStream := defaultMaxJobs(next.Engine), next.StreamMaxLength
	var keeps []func(running, next *Config)
	for _, k := range Keys {
		if !k.Restart() || reflect.DeepEqual(k.value(running), k.value(next)) {
			continue
		}
		changed = append(changed, k.Path)
		keeps = append(keeps, k.keep)
	}
	engineKept := !reflect.DeepEqual(next.Engine, running.Engine)
	for _, keep := range keeps { // after every comparison: keeps may share a field
		keep(running, next)
	}
	next.Backend = running.Backend
	if engineKept && next.MaxJobs == fileJobs {
		// max_jobs left to its default follows the engine's max_threads,
		// which clamd keeps until the restart.
		next.MaxJobs = running.MaxJobs
	}
	for _, p := range next.Policies {
		// Policies were checked against the file's stream_max_length; clamd
		// still enforces the running one.
		// (A managed clamd's limit follows the policies: only cap them.)
		if (next.Engine == nil && p.MaxObject == fileStream) || p.MaxObject > running.StreamMaxLength {
			p.MaxObject = running.StreamMaxLength
		}
	}
	return changed
}
