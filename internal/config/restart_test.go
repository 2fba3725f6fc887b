package config

import (
	"slices"
	"strings"
	"testing"
)

// TestKeepRestartOnly: what a reload may change applies, what needs a
// restart is named and keeps its running value.
func TestKeepRestartOnly(t *testing.T) {
	const base = `
[backend]
address = "unix:/run/clamav/clamd.sock"
stream_max_length = "20M"
[server]
http = "tcp:127.0.0.1:9310"
[[listener]]
address = "unix:/run/clamgate/a.sock"
policy = "a"
[policy.a]
weight = 1
`
	for _, tc := range []struct {
		name, from, to string
		keys           []string
		check          func(t *testing.T, c *Config)
	}{
		{name: "live only", from: `weight = 1`, to: "weight = 5\nmax_concurrent = 3",
			check: func(t *testing.T, c *Config) {
				if p := c.Policies["a"]; p.Weight != 5 || p.MaxConcurrent != 3 {
					t.Errorf("policy not updated: %+v", p)
				}
			}},
		{name: "backend and http", from: "unix:/run/clamav/clamd.sock\"", to: "unix:/run/other.sock\"\ntimeout = \"5s\"",
			keys: []string{"backend.address", "backend.timeout"},
			check: func(t *testing.T, c *Config) {
				if c.Backend != "unix:/run/clamav/clamd.sock" || c.Backends[0] != c.Backend || c.BackendTimeout != DefaultBackendTimeout {
					t.Errorf("backend not kept: %q %v %s", c.Backend, c.Backends, c.BackendTimeout)
				}
			}},
		{name: "http and log", from: `http = "tcp:127.0.0.1:9310"`, to: "http = \"tcp:127.0.0.1:9311\"\nlog_level = \"debug\"",
			keys: []string{"server.log_level", "server.http"},
			check: func(t *testing.T, c *Config) {
				if c.HTTP != "tcp:127.0.0.1:9310" || c.LogLevel != "info" {
					t.Errorf("server not kept: %q %q", c.HTTP, c.LogLevel)
				}
			}},
		{name: "stream limit", from: `stream_max_length = "20M"`, to: `stream_max_length = "50M"`,
			keys: []string{"backend.stream_max_length"},
			check: func(t *testing.T, c *Config) {
				if c.StreamMaxLength != 20<<20 || c.Policies["a"].MaxStream != 20<<20 {
					t.Errorf("stream limit not kept: %d, policy %d", c.StreamMaxLength, c.Policies["a"].MaxStream)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running, err := Parse("a.toml", []byte(base))
			if err != nil {
				t.Fatal(err)
			}
			next, err := Parse("a.toml", []byte(strings.Replace(base, tc.from, tc.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if keys := KeepRestartOnly(running, next); !slices.Equal(keys, tc.keys) {
				t.Errorf("restart keys %v, want %v", keys, tc.keys)
			}
			tc.check(t, next)
		})
	}
}

// TestKeepRestartOnlyEngine: a managed clamd keeps its settings, and
// max_jobs, left to follow its max_threads, keeps the running value too.
func TestKeepRestartOnlyEngine(t *testing.T) {
	const src = "[engine]\nmax_threads = %s\n[[listener]]\naddress = \"unix:/run/a.sock\"\npolicy = \"a\"\n[policy.a]\n"
	running, err := Parse("a.toml", []byte(strings.Replace(src, "%s", "4", 1)))
	if err != nil {
		t.Fatal(err)
	}
	next, err := Parse("a.toml", []byte(strings.Replace(src, "%s", "8", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if keys := KeepRestartOnly(running, next); !slices.Equal(keys, []string{"engine"}) {
		t.Errorf("restart keys %v", keys)
	}
	if next.Engine.MaxThreads != 4 || next.MaxJobs != 4 {
		t.Errorf("engine max_threads %d, max_jobs %d: want 4 and 4", next.Engine.MaxThreads, next.MaxJobs)
	}
}
