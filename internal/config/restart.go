package config

import "reflect"

// restartOnly are the settings a running gateway cannot change: the
// backend pool, the managed clamd and the database watcher are built once
// at start, the HTTP socket may be one systemd passed, and the logger and
// audit observer are wired into everything.
var restartOnly = []struct {
	key   string
	field func(*Config) any // a pointer to the setting
}{
	{"backend.address", func(c *Config) any { return &c.Backends }},
	{"backend.fallback", func(c *Config) any { return &c.Fallback }},
	{"backend.health_interval", func(c *Config) any { return &c.HealthInterval }},
	{"backend.backend_down_wait", func(c *Config) any { return &c.BackendDownWait }},
	{"backend.spool_dir", func(c *Config) any { return &c.SpoolDir }},
	{"backend.cgroup", func(c *Config) any { return &c.EngineCgroup }},
	{"backend.timeout", func(c *Config) any { return &c.BackendTimeout }},
	{"backend.stream_max_length", func(c *Config) any { return &c.StreamMaxLength }},
	{"backend.tls_cert", func(c *Config) any { return &c.BackendTLS }}, // the files, not their contents: those are re-read
	{"engine", func(c *Config) any { return &c.Engine }},
	{"database", func(c *Config) any { return &c.Database }},
	{"server.log_level", func(c *Config) any { return &c.LogLevel }},
	{"server.log_format", func(c *Config) any { return &c.LogFormat }},
	{"server.audit", func(c *Config) any { return &c.Audit }},
	{"server.http", func(c *Config) any { return &c.HTTP }},
	{"server.http_allow_non_loopback", func(c *Config) any { return &c.HTTPAllowNonLoopback }},
	{"server.http_max_connections", func(c *Config) any { return &c.HTTPMaxConnections }},
	{"server.spool_budget", func(c *Config) any { return &c.SpoolBudget }},
	{"server.cache_entries", func(c *Config) any { return &c.CacheEntries }},
	{"server.cache_bytes", func(c *Config) any { return &c.CacheBytes }},
}

// KeepRestartOnly gives next the running values of the settings that only
// a restart can change, and returns the keys whose value next wanted to
// change. Everything else in next applies live.
func KeepRestartOnly(running, next *Config) []string {
	var changed []string
	engineKept := false
	fileJobs, fileStream := defaultMaxJobs(next.Engine), next.StreamMaxLength
	for _, r := range restartOnly {
		old, want := reflect.ValueOf(r.field(running)).Elem(), reflect.ValueOf(r.field(next)).Elem()
		if reflect.DeepEqual(old.Interface(), want.Interface()) {
			continue
		}
		changed = append(changed, r.key)
		engineKept = engineKept || r.key == "engine"
		want.Set(old)
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
		if (next.Engine == nil && p.MaxStream == fileStream) || p.MaxStream > running.StreamMaxLength {
			p.MaxStream = running.StreamMaxLength
		}
	}
	return changed
}
