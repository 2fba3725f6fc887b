package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
)

// TestPackagedPlanGolden: with the Debian package installed, the plan adds
// a drop-in to the packaged unit and leaves the package's user file alone.
func TestPackagedPlanGolden(t *testing.T) {
	for name, mutate := range map[string]func(*Options){"debian-package": func(*Options) {}, "debian-package-unit": unitEngine} {
		t.Run(name, func(t *testing.T) {
			root := fixture(t, "debian")
			withPackage(t, root)
			p := plan(t, root, mutate)
			var out bytes.Buffer
			must(t, p.Write(&out))
			golden(t, name+".plan", out.Bytes())
			for _, c := range p.Changes {
				if c.Path == GatewayUnit || c.Path == SysusersConf {
					t.Errorf("plan writes %s over the package's", c.Path)
				}
			}
			if !strings.Contains(strings.Join(p.Next, "\n"), "systemd-sysusers "+PackagedSysusers) {
				t.Errorf("activation does not create the package's user:\n%s", strings.Join(p.Next, "\n"))
			}
		})
	}
}

// TestPackagedApplyRollback: apply writes the drop-in, a second apply
// nothing, and rollback removes the drop-in and the directory it made.
func TestPackagedApplyRollback(t *testing.T) {
	root := fixture(t, "debian")
	withPackage(t, root)
	before := treeHash(t, root)
	_, err := Apply(plan(t, root), time.Now(), quiet)
	must(t, err)
	if _, err := os.Stat(filepath.Join(root, GatewayDropIn)); err != nil {
		t.Fatal(err)
	}
	if again := plan(t, root); len(again.Changes) != 0 {
		t.Fatalf("second apply would change %s", again.Changes[0].Path)
	}
	_, err = Rollback(root, quiet)
	must(t, err)
	if got := treeHash(t, root); got != before {
		t.Errorf("rollback did not restore the tree:\n%s", lineDiff(before, got))
	}
	if _, err := os.Lstat(filepath.Join(root, filepath.Dir(GatewayDropIn))); err == nil {
		t.Error("rollback left the drop-in directory")
	}
}

// TestPackagedStaleCopy: the full unit an earlier apply wrote to /etc
// would hide the packaged one; once the package is installed, apply
// removes it (backed up) and rollback of both applies restores the host.
// A unit the administrator wrote stays, with a warning.
func TestPackagedStaleCopy(t *testing.T) {
	root := fixture(t, "debian")
	_, err := Apply(plan(t, root), time.Now(), quiet)
	must(t, err)
	withPackage(t, root)
	p := plan(t, root)
	var out bytes.Buffer
	must(t, p.Write(&out))
	if !strings.Contains(out.String(), "remove "+GatewayUnit) {
		t.Fatalf("the plan keeps the earlier copy:\n%s", out.String())
	}
	_, err = Apply(p, time.Now().Add(time.Second), quiet)
	must(t, err)
	if _, err := os.Lstat(filepath.Join(root, GatewayUnit)); err == nil {
		t.Error("the earlier copy is still there")
	}
	if again := plan(t, root); len(again.Changes) != 0 {
		t.Fatalf("third apply would change %s", again.Changes[0].Path)
	}
	done, err := Rollback(root, quiet)
	must(t, err)
	if len(done) != 2 {
		t.Fatalf("rolled back %v", done)
	}
	for _, gone := range []string{GatewayUnit, filepath.Dir(GatewayDropIn), SysusersConf} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s left after rollback", gone)
		}
	}
	must(t, os.WriteFile(filepath.Join(root, GatewayUnit), []byte("[Service]\nExecStart=/usr/bin/clamgate serve\n"), 0o644))
	p = plan(t, root)
	if !strings.Contains(strings.Join(p.Notes, "\n"), "WARNING: "+GatewayUnit+", not written by clamgate deploy") {
		t.Error("no warning for the administrator's copy")
	}
	for _, c := range p.Changes {
		if c.Path == GatewayUnit {
			t.Error("the plan removes the administrator's unit")
		}
	}
}

// effective merges unit files as systemd does for the [Unit] dependencies
// and [Service]: a list setting accumulates until an empty assignment, a
// plain one keeps its last value.
func effective(t *testing.T, files ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, f := range files {
		opts, err := unit.DeserializeOptions(strings.NewReader(f))
		must(t, err)
		for _, o := range opts {
			key := o.Section + "." + o.Name
			list := slices.Contains(listKeys, o.Name) || o.Section == "Unit" && slices.Contains(dependencyKeys, o.Name)
			switch {
			case o.Section != "Unit" && o.Section != "Service":
			case o.Value == "":
				delete(out, key)
			case list:
				out[key] = append(out[key], strings.Fields(o.Value)...)
			default:
				out[key] = []string{o.Value}
			}
		}
	}
	for k, v := range out {
		slices.Sort(v)
		out[k] = slices.Compact(v)
	}
	return out
}

// TestDropInEffective: the packaged unit with the drop-in has every
// setting of the full unit, with the same value; what it has beyond is
// the package's own and listed here.
func TestDropInEffective(t *testing.T) {
	packaged, err := os.ReadFile("../../packaging/debian/clamgate.service")
	must(t, err)
	extra := map[string]string{
		"Service.ExecStartPre":     "the package checks the configuration before starting",
		"Service.RestrictSUIDSGID": "set to no, the full unit's default",
		"Unit.Documentation":       "the man pages",
		"Unit.Description":         "",
	}
	for _, l := range listenings {
		full := GatewayUnitFile(l, PackagedBinary)
		d, err := GatewayDropInFile([]byte(full), packaged)
		must(t, err)
		want, got := effective(t, full), effective(t, string(packaged), d)
		// The package's engine unit, which skips itself (ExecCondition=)
		// unless clamgate.toml sets [engine] unit: deploy's does not.
		for _, k := range []string{"Unit.Wants", "Unit.After"} {
			if got[k] = slices.DeleteFunc(got[k], func(u string) bool { return u == "clamgate-engine.service" }); len(got[k]) == 0 {
				delete(got, k)
			}
		}
		for k, v := range want {
			if k == "Unit.Documentation" || k == "Unit.Description" {
				continue
			}
			if !slices.Equal(got[k], v) {
				t.Errorf("sockets %v: %s = %q with the drop-in, %q in the full unit", l, k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok && extra[k] == "" && k != "Unit.Description" {
				t.Errorf("sockets %v: %s = %q only with the package", l, k, got[k])
			}
		}
		if v := got["Service.RestrictSUIDSGID"]; len(v) > 0 && v[0] != "no" {
			t.Errorf("sockets %v: RestrictSUIDSGID=%s", l, v[0])
		}
	}
}

// TestDropInHardening: systemd scores the packaged unit with the drop-in
// (--root reads drop-ins) at most as exposed as the full unit, and
// verifies it.
func TestDropInHardening(t *testing.T) {
	requireSystemdAnalyze(t)
	for _, tcp := range []bool{false, true} {
		full := t.TempDir()
		unitPath := filepath.Join(full, "etc/systemd/system/clamgate.service")
		must(t, os.MkdirAll(filepath.Dir(unitPath), 0o755))
		l := listenings[1]
		if tcp {
			l = listenings[2]
		}
		must(t, os.WriteFile(unitPath, []byte(GatewayUnitFile(l, PackagedBinary)), 0o644))
		root := fixture(t, "debian")
		withPackage(t, root)
		p := plan(t, root, func(o *Options) {
			if !tcp {
				o.Config = unixOnly(t)
			}
		})
		_, err := Apply(p, time.Now(), quiet)
		must(t, err)
		dropIn, err := os.ReadFile(filepath.Join(root, GatewayDropIn))
		must(t, err)
		if !strings.Contains(string(dropIn), "clamgate.socket") {
			t.Fatalf("tcp %v: the drop-in does not name clamgate.socket", tcp)
		}
		if got := strings.Contains(string(dropIn), "IPAddressAllow=localhost"); got != tcp {
			t.Fatalf("tcp %v: drop-in allows localhost: %v", tcp, got)
		}
		merged, alone := exposure(t, "clamgate.service", "--root="+root), exposure(t, unitPath)
		t.Logf("tcp %v: exposure packaged unit + drop-in %.1f, full unit %.1f", tcp, merged, alone)
		if merged > alone {
			t.Errorf("tcp %v: the packaged unit with the drop-in scores %.1f, the full unit %.1f", tcp, merged, alone)
		}
		stubs(t, root, "/lib/systemd/system/clamgate.service", EngineUnit)
		systemUnits(t, root)
		if out, err := execVerify(root, "clamgate.service"); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("tcp %v: systemd-analyze verify clamgate.service: %v\n%s", tcp, err, out)
		}
	}
}

// unixOnly is a gateway configuration with no TCP listener.
func unixOnly(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "clamgate.toml")
	src := "[backend]\naddress = \"unix:/run/clamgate/engine/clamd.sock\"\n[[listener]]\naddress = \"unix:/run/clamgate/clamd.sock\"\npolicy = \"local\"\n[policy.local]\n"
	must(t, os.WriteFile(f, []byte(src), 0o644))
	return f
}
