package config

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestErrorsGolden checks that every configuration error names its key and
// line, with the exact text an administrator will read.
func TestErrorsGolden(t *testing.T) {
	for _, name := range []string{"bad_values", "bad_semantics", "bad_tls", "unknown_key", "syntax"} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", name+".toml"))
			if err == nil {
				t.Fatal("no error")
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, _ := os.ReadFile(golden)
			if got := err.Error() + "\n"; got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestGood(t *testing.T) {
	cfg, err := Load("testdata/good.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReadTimeout != 30*time.Second || cfg.LogFormat != "json" || cfg.StreamMaxLength != 100<<20 {
		t.Errorf("server/backend settings: %+v", cfg)
	}
	am := cfg.Policies["amavis"]
	if am.MaxObject != 100<<20 || am.MaxConcurrent != 8 || !slices.Equal(am.Users, []string{"root"}) || am.Admin {
		t.Errorf("amavis policy: %+v", am)
	}
	if cfg.Policies["proxy"].MaxObject != 50<<20 {
		t.Errorf("proxy max_stream: %d", cfg.Policies["proxy"].MaxObject)
	}
	if a := cfg.Policies["admin"]; !a.Admin || !slices.Contains(a.Commands, "RELOAD") {
		t.Errorf("admin RELOAD: %+v", a)
	}
	if l := cfg.Listeners[0]; l.Mode != 0o660 || l.Group != "root" || l.Owner != "" {
		t.Errorf("listener 0: %+v", l)
	}
	// Derived bounds: a command as long as clamd allows (within
	// read_timeout), a stream its size at 256 KiB/s after read_timeout,
	// half the listener's connections per uid.
	if cfg.CommandTimeout != 30*time.Second || cfg.StreamTimeout != 30*time.Second+400*time.Second {
		t.Errorf("command_timeout %v, stream_timeout %v", cfg.CommandTimeout, cfg.StreamTimeout)
	}
	if l := cfg.Listeners[0]; l.MaxPerUID != l.MaxConnections/2 {
		t.Errorf("listener 0: max_connections_per_uid %d of %d", l.MaxPerUID, l.MaxConnections)
	}
}

func TestNonLoopbackNeedsOptIn(t *testing.T) {
	if _, err := Load("testdata/nonloopback_allowed.toml"); err != nil {
		t.Fatalf("explicitly allowed: %v", err)
	}
	_, err := FromFlags(Flags{Backend: "unix:/x.sock", Listen: []string{"tcp:0.0.0.0:3310"}})
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("flags with 0.0.0.0: %v", err)
	}
}

func TestFromFlags(t *testing.T) {
	dir := t.TempDir()
	cfg, err := FromFlags(Flags{Backend: "unix:/run/clamav/clamd.sock", Listen: []string{"unix:/run/clamgate/clamd.sock", "tcp:127.0.0.1:3310"}, AllowRoots: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Policies[FlagsPolicy]
	if p.Admin || len(p.Roots) != 1 || slices.Contains(p.Commands, "SHUTDOWN") || !slices.Contains(p.Commands, "INSTREAM") {
		t.Errorf("flags policy: %+v", p)
	}
	if cfg.Listeners[0].Mode != 0o660 || cfg.Engine != nil {
		t.Errorf("flags config: %+v", cfg)
	}
	managed, err := FromFlags(Flags{Listen: []string{"unix:/run/clamgate/clamd.sock"}})
	if err != nil || managed.Engine == nil || managed.Engine.StreamMaxLength != 100<<20 {
		t.Fatalf("managed: %+v, %v", managed, err)
	}
	_, err = FromFlags(Flags{Backend: "unix:/x", Listen: []string{"unix:/y"}, SocketMode: "999", AllowRoots: []string{"/nonexistent-dir"}})
	if err == nil || !strings.Contains(err.Error(), "--socket-mode") || !strings.Contains(err.Error(), "--allow-root") {
		t.Fatalf("bad flags: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100M": 100 << 20, "512K": 512 << 10, "1G": 1 << 30, "4096": 4096} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "M", "-1", "1T", "abc"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDatabaseDefaults(t *testing.T) {
	dir := t.TempDir()
	cfg, err := FromFlags(Flags{Backend: "unix:/run/clamav/clamd.sock", Listen: []string{"tcp:127.0.0.1:3310"}, WatchDB: dir})
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Database; d.Dir != dir || !d.Watch || d.Reload != "auto" || d.Settle != DefaultSettle || d.MaxAge != DefaultMaxAge {
		t.Errorf("external clamd, --watch-db: %+v", d)
	}
	cfg, err = FromFlags(Flags{Listen: []string{"tcp:127.0.0.1:3310"}, StateDir: "/run/x"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.Reload != "auto" || cfg.Engine.Reload != "auto" {
		t.Errorf("managed clamd: reload %q, engine's %q", cfg.Database.Reload, cfg.Engine.Reload)
	}
	if _, err := FromFlags(Flags{Listen: []string{"tcp:127.0.0.1:3310"}, WatchDB: "/nonexistent"}); err == nil {
		t.Error("--watch-db of a missing directory accepted")
	}
}

func TestBackendExtras(t *testing.T) {
	cfg, err := Parse("t.toml", []byte(`
[backend]
address = ["unix:/a.sock", "unix:/b.sock"]
fallback = "tcp:127.0.0.1:3310"
cgroup = "/sys/fs/cgroup/system.slice/clamgate-clamd.service"
spool_dir = "/var/tmp"
bulk_cap = 2
[[listener]]
address = "tcp:127.0.0.1:3311"
policy = "p"
[policy.p]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Backends) != 2 || cfg.Backend != "unix:/a.sock" || cfg.Fallback != "tcp:127.0.0.1:3310" ||
		cfg.EngineCgroup == "" || cfg.SpoolDir != "/var/tmp" || cfg.BulkCap != 2 {
		t.Errorf("%+v", cfg)
	}
}

// The ICAP preview defaults to none (squid 5.7's bug 5352) and stays
// settable for clients that want one.
func TestICAPPreview(t *testing.T) {
	for src, want := range map[string]int{"": 0, "[icap]\npreview = 1024\n": 1024} {
		cfg, err := Parse("t.toml", []byte(src+`
[backend]
address = "unix:/run/clamav/clamd.sock"
[[listener]]
address = "tcp:127.0.0.1:1344"
protocol = "icap"
policy = "proxy"
[policy.proxy]
`))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ICAP.Preview != want {
			t.Errorf("%q: preview %d, want %d", src, cfg.ICAP.Preview, want)
		}
	}
}

// TestShowRoundTrip: what `config show` prints is a valid file that loads
// to a configuration shown the same way, and it names every default.
func TestShowRoundTrip(t *testing.T) {
	for _, name := range []string{"good.toml", "nonloopback_allowed.toml", "tls.toml"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			shown, again := showAndLoad(t, cfg)
			reshown, err := again.Show()
			if err != nil {
				t.Fatal(err)
			}
			if string(reshown) != string(shown) {
				t.Errorf("show is not a fixed point:\nfirst:\n%s\nsecond:\n%s", shown, reshown)
			}
			if name == "tls.toml" {
				for _, want := range []string{`tls_client_ca = '/etc/clamgate/tls/ca.crt'`, `policies = ['mail', 'proxies']`, `tls_ca = '/etc/clamgate/tls/ca.crt'`,
					`tls_identities = ['cn:proxy-7']`, `allow_anonymous_network = true`, `tls_min_version = '1.2'`} {
					if !strings.Contains(string(shown), want) {
						t.Errorf("shown TLS configuration lacks %s:\n%s", want, shown)
					}
				}
			}
			for _, key := range []string{"read_timeout", "health_interval", "max_queue", "weight", "settle", "options_ttl", "on_infected"} {
				if !strings.Contains(string(shown), key+" = ") {
					t.Errorf("shown configuration lacks the default of %s:\n%s", key, shown)
				}
			}
		})
	}
}

// TestShowKeepsEveryKey: keys set away from their defaults come back the
// same through config show.
func TestShowKeepsEveryKey(t *testing.T) {
	src := `[backend]
address = "unix:/x.sock"
bulk_size = "2M"
[server]
http_max_connections = 4
command_timeout = "7s"
[icap]
request_timeout = "30s"
[[listener]]
address = "unix:/y.sock"
policy = "p"
max_connections_per_uid = 3
[policy.p]
roots = ["/var/lib/amavis/tmp"]
allow_writable_root_ancestors = true
max_walk_depth = 5
max_dir_entries = 100
max_queue_bytes = "1M"
status = true
tokens_sha256 = ["abababababababababababababababababababababababababababababababab"]
`
	cfg, err := Parse("in.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	shown, again := showAndLoad(t, cfg)
	p := again.Policies["p"]
	if again.BulkSize != 2<<20 || again.HTTPMaxConnections != 4 || again.CommandTimeout != 7*time.Second ||
		again.ICAP.RequestTimeout != 30*time.Second || again.Listeners[0].MaxPerUID != 3 ||
		!p.AllowWritableRootAncestors || p.MaxWalkDepth != 5 || p.MaxDirEntries != 100 || p.MaxQueueBytes != 1<<20 ||
		!p.Status || len(p.TokensSHA256) != 1 || p.TokensSHA256[0][0] != 0xab {
		t.Errorf("config show lost a key:\n%s", shown)
	}
}

// showAndLoad prints cfg as config show does and loads what it printed.
func showAndLoad(t *testing.T, cfg *Config) ([]byte, *Config) {
	t.Helper()
	shown, err := cfg.Show()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("shown.toml", shown)
	if err != nil {
		t.Fatalf("shown configuration does not load: %v\n%s", err, shown)
	}
	return shown, again
}
