package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTmpfilesACL pins what the rehearsal on a real Debian 12 found:
// systemd-tmpfiles 252 rejects a whole ACL with setfacl's X in it ("Failed
// to parse ACL ... Invalid argument. Ignoring"), so clamgate could not read
// amavis's files. Every a/A line must use only r, w, x and -.
func TestTmpfilesACL(t *testing.T) {
	perm := regexp.MustCompile(`^[rwx-]{1,3}$`)
	for _, host := range []string{"debian", "rocky"} {
		p := plan(t, fixture(t, host))
		for _, line := range strings.Split(Tmpfiles(p.Host, p.Engine), "\n") {
			f := strings.Fields(line)
			if len(f) < 7 || !strings.HasPrefix(f[0], "a") && !strings.HasPrefix(f[0], "A") {
				continue
			}
			for _, entry := range strings.Split(f[6], ",") {
				parts := strings.Split(entry, ":")
				if p := parts[len(parts)-1]; !perm.MatchString(p) {
					t.Errorf("%s: %q: permissions %q are not r, w, x or - (systemd-tmpfiles < 253 rejects the line)", host, line, p)
				}
			}
		}
	}
}

// TestActivation: what apply --activate runs, in order, on each layout.
func TestActivation(t *testing.T) {
	join := func(cmds [][]string) []string {
		var out []string
		for _, c := range cmds {
			out = append(out, strings.Join(c, " "))
		}
		return out
	}
	debian := join(Activation(plan(t, fixture(t, "debian"))))
	want := []string{
		"systemd-sysusers /etc/sysusers.d/clamgate.conf",
		"systemd-tmpfiles --create /etc/tmpfiles.d/clamgate.conf",
		"systemctl daemon-reload",
		"systemctl stop c-icap.service clamav-daemon.service clamav-daemon.socket clamav-milter.service",
		"systemctl enable --now clamgate-clamd.service",
		"systemctl enable clamgate.service",
		"systemctl restart clamgate.socket",
		"systemctl start clamgate.service",
		"systemctl restart amavis.service",
		"postfix reload",
		"squid -k reconfigure",
	}
	if !slices.Equal(debian, want) {
		t.Errorf("debian activation:\n%s\nwant:\n%s", strings.Join(debian, "\n"), strings.Join(want, "\n"))
	}
	rocky := join(Activation(plan(t, fixture(t, "rocky"))))
	if !slices.Contains(rocky, "systemctl restart amavisd.service") {
		t.Errorf("rocky activation restarts the wrong amavis unit:\n%s", strings.Join(rocky, "\n"))
	}
	if p := plan(t, fixture(t, "debian")); !slices.Equal(p.Next, debian) {
		t.Errorf("the printed next steps are not what --activate runs:\n%s", strings.Join(p.Next, "\n"))
	}
}

// TestUnmasked: rollback --activate starts exactly the units apply masked.
func TestUnmasked(t *testing.T) {
	root := fixture(t, "debian")
	p := plan(t, root)
	if _, err := Apply(p, time.Now(), quiet); err != nil {
		t.Fatal(err)
	}
	if ok, err := Pending(root); !ok || err != nil {
		t.Fatalf("Pending after apply: %v %v", ok, err)
	}
	dirs, err := Rollback(root, quiet)
	must(t, err)
	if ok, _ := Pending(root); ok {
		t.Error("Pending after rollback")
	}
	units, err := Unmasked(dirs)
	must(t, err)
	slices.Sort(units)
	if !slices.Equal(units, p.Masks) {
		t.Errorf("Unmasked = %v, want the masks apply wrote: %v", units, p.Masks)
	}
	got := strings.Join(Reactivation(p.Host, units)[1], " ")
	if got != "systemctl start "+strings.Join(units, " ") {
		t.Errorf("Reactivation starts %q", got)
	}
}

// TestGatewayUnitKeepsOpenat2: under RestrictSUIDSGID=yes systemd 252
// answers openat2 with ENOSYS, and every amavis path scan failed on the
// rehearsal host ("File path check failure: Function not implemented").
func TestGatewayUnitKeepsOpenat2(t *testing.T) {
	for _, l := range listenings {
		if u := GatewayUnitFile(l, Binary); strings.Contains(u, "RestrictSUIDSGID=yes") {
			t.Errorf("clamgate.service (%v) has RestrictSUIDSGID=yes: openat2 fails with ENOSYS", l)
		}
	}
}

// TestWantedByDropIn: the rehearsal host's amavis.service.d/clamd.conf
// wants clamd@amavis; the plan must say amavis.service wants it, not
// "clamd.conf".
func TestWantedByDropIn(t *testing.T) {
	root := fixture(t, "debian")
	dir := filepath.Join(root, "etc/systemd/system/amavis.service.d")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "clamd.conf"), []byte("[Unit]\nWants=clamd@amavis.service\n"), 0o644))
	for _, u := range plan(t, root).Host.Units {
		if u.Name == "clamd@amavis.service" {
			if !slices.Equal(u.WantedBy, []string{"amavis.service"}) {
				t.Errorf("clamd@amavis.service wanted by %v, want [amavis.service]", u.WantedBy)
			}
			return
		}
	}
	t.Error("clamd@amavis.service, wanted by a drop-in, was not found")
}
