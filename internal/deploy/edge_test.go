package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"clamgate/internal/tlsid"
)

// Where the edge fixtures keep the host's certificate, key and the pool's CA.
const (
	edgeCert = "/etc/clamgate/tls/mx1.crt"
	edgeKey  = "/etc/clamgate/tls/mx1.key"
	edgeCA   = "/etc/clamgate/tls/ca.crt"
)

// withPool puts a CA and the host's certificate (fixed dates, so that the
// golden plan does not change with the clock) in the tree, and a clamgate
// user owning the key (the test's own uid, which owns the file); it
// returns the options of the edge variant for those endpoints.
func withPool(t *testing.T, root string, pool ...string) func(*Options) {
	t.Helper()
	ca, caPair, err := tlsid.NewCA("clamgate test pool CA", 100*365*24*time.Hour)
	must(t, err)
	host, err := ca.Issue([]string{"dns:mx1.example.org"}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 100*365*24*time.Hour)
	must(t, err)
	for p, b := range map[string][]byte{edgeCA: caPair.CertPEM, edgeCert: host.CertPEM, edgeKey: host.KeyPEM} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, p), b, 0o600))
	}
	f, err := os.OpenFile(filepath.Join(root, "etc/passwd"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = fmt.Fprintf(f, "clamgate:x:%d:%d:clamgate:/:/usr/sbin/nologin\n", os.Getuid(), os.Getgid())
	must(t, err)
	must(t, f.Close())
	return func(o *Options) { o.Pool, o.PoolCert, o.PoolKey, o.PoolCA = pool, edgeCert, edgeKey, edgeCA }
}

var twoPools = []string{"tls:scan1.example.org:3311", "tls:scan2.example.org:3311"}

// TestEdgePlanGolden: the edge variant writes the gateway with the pool as
// its backends and the same client listeners, masks the same clamd units,
// repoints clamdscan, and writes no engine, no clamd.conf of its own and
// no freshclam change; with the package, the drop-in opens the network.
func TestEdgePlanGolden(t *testing.T) {
	for _, tc := range []struct {
		name, host string
		pkg        bool
	}{{"debian-edge", "debian", false}, {"debian-package-edge", "debian", true}, {"rocky-edge", "rocky", false}} {
		t.Run(tc.name, func(t *testing.T) {
			root := fixture(t, tc.host)
			if tc.pkg {
				withPackage(t, root)
			}
			p := plan(t, root, withPool(t, root, twoPools...))
			var out bytes.Buffer
			must(t, p.Write(&out))
			golden(t, tc.name+".plan", out.Bytes())
			for _, c := range p.Changes {
				switch {
				case c.Path == ClamdConf || c.Path == EngineUnit || c.Path == QuadletFile || c.Path == AppArmorLocal:
					t.Errorf("the edge variant writes the engine's %s", c.Path)
				case strings.Contains(c.Path, "freshclam"):
					t.Errorf("the edge variant changes freshclam: %s", c.Path)
				}
			}
			if len(p.Masks) == 0 {
				t.Error("no clamd unit masked")
			}
			for _, cmd := range p.Next {
				if strings.Contains(cmd, "clamgate-clamd") {
					t.Errorf("activation names the engine: %s", cmd)
				}
			}
		})
	}
}

// TestEdgeApplyRollback: apply, a second apply that changes nothing, and
// a rollback that restores the tree byte for byte.
func TestEdgeApplyRollback(t *testing.T) {
	for _, pkg := range []bool{false, true} {
		t.Run(fmt.Sprint("package=", pkg), func(t *testing.T) {
			root := fixture(t, "debian")
			if pkg {
				withPackage(t, root)
			}
			edge := withPool(t, root, twoPools...)
			before := treeHash(t, root)
			_, err := Apply(plan(t, root, edge), time.Now(), quiet)
			must(t, err)
			if again := plan(t, root, edge); len(again.Changes) != 0 {
				t.Fatalf("second apply would change %s", again.Changes[0].Path)
			}
			if got := Deactivation(root)[0]; !slices.Equal(got, []string{"systemctl", "disable", "--now", "clamgate.service", "clamgate.socket"}) {
				t.Errorf("deactivation on an edge: %v", got)
			}
			_, err = Rollback(root, quiet)
			must(t, err)
			if got := treeHash(t, root); got != before {
				t.Errorf("rollback did not restore the tree:\n%s", lineDiff(before, got))
			}
		})
	}
}

// TestEdgeOptions: what the edge variant refuses, and the variant taken
// from a --config whose backends are all tls:.
func TestEdgeOptions(t *testing.T) {
	root := fixture(t, "debian")
	edge := withPool(t, root, twoPools...)
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"plain tcp pool", func(o *Options) { edge(o); o.Pool = []string{"tcp:scan1.example.org:3310"} }, "mutual TLS only"},
		{"no port", func(o *Options) { edge(o); o.Pool = []string{"tls:scan1.example.org"} }, "missing port"},
		{"no key", func(o *Options) { edge(o); o.PoolKey = "" }, "--pool-key"},
		{"relative CA", func(o *Options) { edge(o); o.PoolCA = "ca.crt" }, "--pool-ca"},
		{"engine unit", func(o *Options) { edge(o); o.Engine = KindUnit }, "runs clamd on this host"},
		{"image", func(o *Options) { edge(o); o.Image = "localhost/x@sha256:" + strings.Repeat("ab", 32) }, "no engine"},
		{"missing certificate", func(o *Options) { edge(o); o.PoolCert = "/etc/clamgate/tls/nope.crt" }, "open /etc/clamgate/tls/nope.crt: no such file"},
		{"cert without pool", func(o *Options) { o.PoolCert = edgeCert }, "go with --pool"},
		{"edge without pool", func(o *Options) { o.Engine = KindEdge }, "--pool tls:HOST:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Root: root}
			tc.mutate(&opts)
			if _, err := Build(opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
	t.Run("from --config", func(t *testing.T) {
		p := plan(t, root, edge)
		cfg := filepath.Join(t.TempDir(), "clamgate.toml")
		src := p.Changes[slices.IndexFunc(p.Changes, func(c Change) bool { return c.Path == GatewayConf })].Content
		must(t, os.WriteFile(cfg, src, 0o644))
		got := plan(t, root, func(o *Options) { o.Config = cfg })
		if got.Edge == nil || !slices.Equal(got.Edge.Pool, twoPools) || slices.ContainsFunc(got.Changes, func(c Change) bool { return c.Path == EngineUnit }) {
			t.Errorf("a configuration forwarding to tls: backends did not give the edge variant: %+v", got.Edge)
		}
	})
	t.Run("key unreadable", func(t *testing.T) {
		r := fixture(t, "debian")
		opts := withPool(t, r, twoPools...)
		must(t, os.WriteFile(filepath.Join(r, "etc/passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644))
		p := plan(t, r, opts)
		if !strings.Contains(strings.Join(p.Notes, "\n"), "not readable by user clamgate") {
			t.Errorf("no warning for a key clamgate cannot read:\n%s", strings.Join(p.Notes, "\n"))
		}
	})
}

// TestEdgeNetwork: a pool named by addresses is the only place (with
// loopback) the edge gateway may connect to; one named by DNS leaves the
// address filter off, since the resolver must be reached too.
func TestEdgeNetwork(t *testing.T) {
	byIP := EdgeNetwork(&Edge{Pool: []string{"tls:10.0.0.7:3311", "tls:[2001:db8::7]:3311", "tls:10.0.0.7:3312"}})
	if !strings.Contains(byIP, "IPAddressDeny=any\nIPAddressAllow=localhost 10.0.0.7 2001:db8::7\n") {
		t.Errorf("pool by address:\n%s", byIP)
	}
	byName := EdgeNetwork(&Edge{Pool: []string{"tls:10.0.0.7:3311", "tls:scan.example.org:3311"}})
	if strings.Contains(byName, "IPAddressDeny") || !strings.Contains(byName, "AF_INET AF_INET6") {
		t.Errorf("pool by name:\n%s", byName)
	}
	unit := EdgeGatewayUnitFile(Listening{TCP: []string{"127.0.0.1:9310"}}, Binary, &Edge{Pool: twoPools})
	if strings.Contains(unit, "clamgate-clamd") || strings.Contains(unit, "PrivateNetwork=yes") {
		t.Errorf("the edge unit needs the engine or has no network:\n%s", unit)
	}
}

// TestEdgeUnitHardening scores the edge gateway's unit, alone and as the
// packaged unit with its drop-in: opening the network to reach the pool
// costs some exposure, and the drop-in must not score worse than the full
// unit; systemd-analyze verify finds nothing to say.
func TestEdgeUnitHardening(t *testing.T) {
	requireSystemdAnalyze(t)
	for name, pool := range map[string][]string{"by name": twoPools, "by address": {"tls:10.0.0.7:3311", "tls:10.0.0.8:3311"}} {
		full := t.TempDir()
		unitPath := filepath.Join(full, "etc/systemd/system/clamgate.service")
		must(t, os.MkdirAll(filepath.Dir(unitPath), 0o755))
		must(t, os.WriteFile(unitPath, []byte(EdgeGatewayUnitFile(Listening{TCP: []string{"127.0.0.1:9310"}}, PackagedBinary, &Edge{Pool: pool})), 0o644))
		root := fixture(t, "debian")
		withPackage(t, root)
		_, err := Apply(plan(t, root, withPool(t, root, pool...)), time.Now(), quiet)
		must(t, err)
		merged, alone := exposure(t, "clamgate.service", "--root="+root), exposure(t, unitPath)
		t.Logf("pool %s: exposure packaged unit + drop-in %.1f, full unit %.1f", name, merged, alone)
		if merged > alone || alone > 2.0 {
			t.Errorf("pool %s: the packaged unit with the drop-in scores %.1f, the full unit %.1f (want <= 2.0)", name, merged, alone)
		}
		stubs(t, root, "/lib/systemd/system/clamgate.service")
		systemUnits(t, root)
		if out, err := execVerify(root, "clamgate.service"); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("pool %s: systemd-analyze verify clamgate.service: %v\n%s", name, err, out)
		}
	}
}
