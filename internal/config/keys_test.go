package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestKeys: every key of the file is classified live or restart-only, once,
// and the table names no key the file does not have. A new key fails here
// until it says what applies it on reload, or that it needs a restart.
func TestKeys(t *testing.T) {
	inFile := structKeys(reflect.TypeOf(file{}), "")
	seen := map[string]bool{}
	appliers := []Applier{ApplyDispatcher, ApplyRoute, ApplySocket, ApplyFront, ApplyServer}
	for _, k := range Keys {
		switch {
		case seen[k.Path]:
			t.Errorf("%s: twice in Keys (internal/config/keys.go)", k.Path)
		case !slices.Contains(inFile, k.Path):
			t.Errorf("%s: in Keys (internal/config/keys.go) but not a key of the file: remove it or correct its path", k.Path)
		case k.Restart() && (k.value == nil || k.keep == nil):
			t.Errorf("%s: restart-only without a value to keep", k.Path)
		case !k.Restart() && !slices.Contains(appliers, k.Live):
			t.Errorf("%s: live by %q, which nothing applies", k.Path, k.Live)
		}
		seen[k.Path] = true
	}
	for _, key := range inFile {
		if !seen[key] {
			t.Errorf("key %s is not in Keys (internal/config/keys.go): say whether a reload applies it (and by what) or it needs a restart", key)
		}
	}
}

// TestKeepRestartOnlyEveryKey: a change of any one restart-only key is
// reported by its name, and the running value of every restart-only key
// is what the reloaded configuration keeps.
func TestKeepRestartOnlyEveryKey(t *testing.T) {
	const src = "[engine]\n[[listener]]\naddress = \"unix:/run/a.sock\"\npolicy = \"a\"\n[policy.a]\n"
	filled, zero := &Config{Engine: &Engine{}}, &Config{Engine: &Engine{}}
	fill(reflect.ValueOf(filled).Elem())
	for _, k := range Keys {
		if !k.Restart() {
			continue
		}
		running, err := Parse("a.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		next, _ := Parse("a.toml", []byte(src))
		other := filled
		if reflect.DeepEqual(k.value(filled), k.value(running)) {
			other = zero // a default of true
		}
		k.keep(other, next) // next now has other's value of k
		if reflect.DeepEqual(k.value(running), k.value(next)) {
			t.Errorf("%s: a changed value reads the same", k.Path)
			continue
		}
		if got := KeepRestartOnly(running, next); !slices.Contains(got, k.Path) {
			t.Errorf("%s changed: reported %v", k.Path, got)
		}
		for _, r := range Keys {
			if r.Restart() && !reflect.DeepEqual(r.value(running), r.value(next)) {
				t.Errorf("%s changed: %s not kept: %v, running %v", k.Path, r.Path, r.value(next), r.value(running))
			}
		}
	}
}

// fill gives every settable field of v a non-zero value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("other")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	}
}

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
				if c.StreamMaxLength != 20<<20 || c.Policies["a"].MaxObject != 20<<20 {
					t.Errorf("stream limit not kept: %d, policy %d", c.StreamMaxLength, c.Policies["a"].MaxObject)
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
	if keys := KeepRestartOnly(running, next); !slices.Equal(keys, []string{"engine.max_threads"}) {
		t.Errorf("restart keys %v", keys)
	}
	if next.Engine.MaxThreads != 4 || next.MaxJobs != 4 {
		t.Errorf("engine max_threads %d, max_jobs %d: want 4 and 4", next.Engine.MaxThreads, next.MaxJobs)
	}
}
