package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// debianUnits are copied from this machine when installed, so that the
// fixture tracks Debian's real unit files; testdata keeps a copy for hosts
// without them.
var debianUnits = []string{"clamav-daemon.service", "clamav-daemon.socket", "clamav-freshclam.service", "c-icap.service", "amavis.service", "postfix.service", "squid.service"}

// fixtureLinks are the enable symlinks of each fixture host.
var fixtureLinks = map[string]map[string]string{
	"debian": {
		"etc/systemd/system/multi-user.target.wants/clamav-daemon.service":    "/lib/systemd/system/clamav-daemon.service",
		"etc/systemd/system/multi-user.target.wants/clamav-freshclam.service": "/lib/systemd/system/clamav-freshclam.service",
		"etc/systemd/system/multi-user.target.wants/amavis.service":           "/lib/systemd/system/amavis.service",
		"etc/systemd/system/multi-user.target.wants/c-icap.service":           "/lib/systemd/system/c-icap.service",
		"etc/systemd/system/sockets.target.wants/clamav-daemon.socket":        "/lib/systemd/system/clamav-daemon.socket",
	},
	"rocky": {
		"etc/systemd/system/multi-user.target.wants/amavisd.service":       "/usr/lib/systemd/system/amavisd.service",
		"etc/systemd/system/multi-user.target.wants/clamd@scan.service":    "/usr/lib/systemd/system/clamd@.service",
		"etc/systemd/system/multi-user.target.wants/clamav-milter.service": "/usr/lib/systemd/system/clamav-milter.service",
		"etc/systemd/system/multi-user.target.wants/c-icap.service":        "/usr/lib/systemd/system/c-icap.service",
	},
}

// fixture builds a host tree in a temporary directory.
func fixture(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	if name == "debian" {
		dir := filepath.Join(root, "lib/systemd/system")
		must(t, os.MkdirAll(dir, 0o755))
		for _, u := range debianUnits {
			src, err := os.ReadFile("/lib/systemd/system/" + u)
			if err != nil {
				src, err = os.ReadFile("testdata/units-debian/" + u)
			}
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, u), src, 0o644))
		}
		must(t, os.MkdirAll(filepath.Join(root, "var/lib/amavis/tmp"), 0o750))
	}
	for link, target := range fixtureLinks[name] {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755))
		must(t, os.Symlink(target, filepath.Join(root, link)))
	}
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// treeHash lists every path with its type, mode and content or target;
// the backup directory is apply's record and is left out.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "var/lib/clamgate" {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			b.WriteString(" -> " + target)
		case fi.Mode().IsRegular():
			src, _ := os.ReadFile(p)
			h := sha256.Sum256(src)
			b.WriteString(" " + hex.EncodeToString(h[:]))
		}
		b.WriteString("\n")
		return nil
	})
	must(t, err)
	return b.String()
}

func plan(t *testing.T, root string, mutate ...func(*Options)) *Plan {
	t.Helper()
	opts := Options{Root: root}
	for _, m := range mutate {
		m(&opts)
	}
	p, err := Build(opts)
	must(t, err)
	return p
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		must(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -run %s -update):\n%s", name, t.Name(), got)
	}
}

func TestPlanGolden(t *testing.T) {
	for _, host := range []string{"debian", "rocky"} {
		t.Run(host, func(t *testing.T) {
			root := fixture(t, host)
			before := treeHash(t, root)
			var out bytes.Buffer
			must(t, plan(t, root).Write(&out))
			golden(t, host+".plan", out.Bytes())
			if treeHash(t, root) != before {
				t.Error("plan wrote to the tree")
			}
		})
	}
}

func TestApplyIdempotentRollback(t *testing.T) {
	for _, host := range []string{"debian", "rocky"} {
		t.Run(host, func(t *testing.T) {
			root := fixture(t, host)
			before := treeHash(t, root)
			dir, err := Apply(plan(t, root), time.Now(), quiet)
			must(t, err)
			if dir == "" {
				t.Fatal("first apply changed nothing")
			}
			applied := treeHash(t, root)
			again := plan(t, root)
			if len(again.Changes) != 0 {
				t.Fatalf("second apply would change %d paths, first %s", len(again.Changes), again.Changes[0].Path)
			}
			if dir, err := Apply(again, time.Now(), quiet); err != nil || dir != "" {
				t.Fatalf("second apply: %q, %v", dir, err)
			}
			if treeHash(t, root) != applied {
				t.Fatal("second apply changed the tree")
			}
			done, err := Rollback(root, quiet)
			must(t, err)
			if len(done) != 1 {
				t.Fatalf("rolled back %v", done)
			}
			if got := treeHash(t, root); got != before {
				t.Errorf("rollback did not restore the tree:\n%s", lineDiff(before, got))
			}
			if done, err := Rollback(root, quiet); err != nil || len(done) != 0 {
				t.Errorf("second rollback: %v, %v", done, err)
			}
		})
	}
}

// TestRollbackUndoesEveryApply: an apply with another image on top of the
// first is undone too, back to the host as it was.
func TestRollbackUndoesEveryApply(t *testing.T) {
	root := fixture(t, "debian")
	before := treeHash(t, root)
	_, err := Apply(plan(t, root), time.Now(), quiet)
	must(t, err)
	local := "localhost/clamgate/clamd@sha256:" + strings.Repeat("ab", 32)
	p := plan(t, root, func(o *Options) { o.Image = local })
	if len(p.Changes) == 0 {
		t.Fatal("a new image changed nothing")
	}
	_, err = Apply(p, time.Now().Add(time.Second), quiet)
	must(t, err)
	done, err := Rollback(root, quiet)
	must(t, err)
	if len(done) != 2 || treeHash(t, root) != before {
		t.Errorf("rolled back %v; tree restored: %v", done, treeHash(t, root) == before)
	}
}

func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMovingTagRefused(t *testing.T) {
	root := fixture(t, "debian")
	_, err := Build(Options{Root: root, Image: "docker.io/clamav/clamav:stable"})
	if err == nil || !strings.Contains(err.Error(), "--allow-moving-tag") {
		t.Fatalf("tag accepted: %v", err)
	}
	p, err := Build(Options{Root: root, Image: "docker.io/clamav/clamav:stable", AllowMovingTag: true})
	must(t, err)
	if !strings.Contains(strings.Join(p.Notes, "\n"), "moving tag") {
		t.Error("no warning for an allowed moving tag")
	}
	for _, ref := range []string{"clamgate/clamd:local", "clamav/clamav@sha256:1234", "clamav/clamav:1.4@sha256:" + strings.Repeat("0", 63)} {
		if _, err := ParseImage(ref, false); err == nil {
			t.Errorf("%s accepted without --allow-moving-tag", ref)
		}
	}
}

// TestWantsTrap: amavisd.service wants clamd@amavisd.service; after apply
// that unit is masked, so amavis cannot start the old clamd again.
func TestWantsTrap(t *testing.T) {
	root := fixture(t, "rocky")
	p := plan(t, root)
	_, err := Apply(p, time.Now(), quiet)
	must(t, err)
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/amavisd.service"))
	must(t, err)
	if !strings.Contains(string(unit), "Wants=clamd@amavisd.service") {
		t.Fatal("fixture lost the trap")
	}
	for _, u := range []string{"clamd@amavisd.service", "clamd@scan.service", "clamav-milter.service", "c-icap.service"} {
		if target, _ := os.Readlink(filepath.Join(root, "etc/systemd/system", u)); target != "/dev/null" {
			t.Errorf("%s not masked (link %q)", u, target)
		}
	}
	if target, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/clamav-freshclam.service")); target == "" {
		t.Error("freshclam not enabled")
	}
	root = fixture(t, "debian")
	_, err = Apply(plan(t, root), time.Now(), quiet)
	must(t, err)
	for _, u := range []string{"clamav-daemon.service", "clamav-daemon.socket", "clamav-milter.service", "c-icap.service"} {
		if target, _ := os.Readlink(filepath.Join(root, "etc/systemd/system", u)); target != "/dev/null" {
			t.Errorf("debian: %s not masked (link %q)", u, target)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/clamav-freshclam.service")); err == nil {
		t.Error("freshclam touched")
	}
}

func TestGeneratedTOMLParses(t *testing.T) {
	for _, u := range []string{"amavis", "postfix"} {
		if _, err := user.Lookup(u); err != nil {
			t.Skipf("user %s does not exist here (scripts/install-deps.sh --test installs amavisd-new and postfix): config.Parse resolves policy users", u)
		}
	}
	for _, host := range []string{"debian", "rocky"} {
		root := fixture(t, host)
		p := plan(t, root)
		_, err := Apply(p, time.Now(), quiet)
		must(t, err)
		src, err := os.ReadFile(filepath.Join(root, GatewayConf))
		must(t, err)
		if _, err := user.LookupGroup(p.Host.ClamdUser); err != nil {
			// The tree's clamd group (RHEL's clamscan) is not this host's:
			// config.Parse resolves groups where it runs.
			src = bytes.ReplaceAll(src, []byte(fmt.Sprintf("groups = [%q]", p.Host.ClamdUser)), []byte(`groups = ["root"]`))
		}
		cfg, err := config.Parse(GatewayConf, src)
		if err != nil {
			t.Fatalf("%s: %v\n%s", host, err, src)
		}
		if len(cfg.Listeners) != 4 || cfg.Database.Reload != "frugal" || cfg.Backend != "unix:"+EngineDir+"/clamd.sock" {
			t.Errorf("%s: %d listeners, reload %s, backend %s", host, len(cfg.Listeners), cfg.Database.Reload, cfg.Backend)
		}
	}
}

func TestConfigFlagInstallsGivenFile(t *testing.T) {
	root := fixture(t, "debian")
	bad := filepath.Join(t.TempDir(), "bad.toml")
	must(t, os.WriteFile(bad, []byte("[backend]\n"), 0o644))
	if _, err := Build(Options{Root: root, Config: bad}); err == nil {
		t.Error("an invalid --config was accepted")
	}
	good := filepath.Join(t.TempDir(), "good.toml")
	src := []byte("[backend]\naddress = \"unix:/run/clamgate/engine/clamd.sock\"\n[[listener]]\naddress = \"unix:/run/clamgate/clamd.sock\"\npolicy = \"local\"\n[policy.local]\n")
	must(t, os.WriteFile(good, src, 0o644))
	p := plan(t, root, func(o *Options) { o.Config = good })
	for _, c := range p.Changes {
		if c.Path == GatewayConf && !bytes.Equal(c.Content, src) {
			t.Error("--config file not installed as is")
		}
	}
}

// stubs makes every program the units execute exist in the tree, which
// systemd-analyze verify --root checks.
func stubs(t *testing.T, root string, units ...string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^Exec[A-Za-z]*=[-@!+:]*(/\S+)`)
	for _, u := range units {
		src, err := os.ReadFile(filepath.Join(root, u))
		must(t, err)
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			p := filepath.Join(root, m[1])
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
		}
	}
}

// systemUnits copies systemd's own units (sysinit.target...) into the tree:
// verify --root resolves the default dependencies there.
func systemUnits(t *testing.T, root string) {
	t.Helper()
	const dir = "/usr/lib/systemd/system"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("no %s on this machine to verify against: %v", dir, err)
	}
	must(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
	for _, e := range entries {
		dst := filepath.Join(root, dir, e.Name())
		if _, err := os.Lstat(dst); err == nil || e.IsDir() {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(filepath.Join(dir, e.Name()))
			must(t, os.Symlink(target, dst))
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		must(t, err)
		must(t, os.WriteFile(dst, src, 0o644))
	}
}

func TestSystemdVerifyAndSecurity(t *testing.T) {
	requireSystemdAnalyze(t)
	for _, host := range []string{"debian", "rocky"} {
		root := fixture(t, host)
		_, err := Apply(plan(t, root), time.Now(), quiet)
		must(t, err)
		stubs(t, root, GatewayUnit, EngineUnit)
		systemUnits(t, root)
		for _, u := range []string{"clamgate.service", "clamgate.socket", "clamgate-clamd.service"} {
			out, err := execVerify(root, u)
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("%s: systemd-analyze verify %s: %v\n%s", host, u, err, out)
			}
		}
	}
	dir := t.TempDir()
	for _, l := range listenings {
		unit := filepath.Join(dir, "clamgate.service")
		must(t, os.WriteFile(unit, []byte(GatewayUnitFile(l, Binary)), 0o644))
		score := exposure(t, unit)
		t.Logf("clamgate.service exposure, sockets %v: %.1f", l, score)
		if score > 1.0 {
			t.Errorf("clamgate.service exposure %.1f with sockets %v, want <= 1.0", score, l)
		}
	}
}

// listenings are clamgate.socket's cases: none, unix listeners only, both.
var listenings = []Listening{
	{},
	{Unix: []string{"/run/clamgate/clamd.sock"}, Mode: "0660"},
	{TCP: []string{"127.0.0.1:1344"}, Unix: []string{"/run/clamgate/clamd.sock"}, Mode: "0660"},
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure scores a unit file alone; args may add --root= and name the unit
// instead (then its drop-ins count too).
func exposure(t *testing.T, unit string, args ...string) float64 {
	t.Helper()
	args = append([]string{"security", "--offline=true", "--no-pager"}, append(args, unit)...)
	out, _ := exec.Command("systemd-analyze", args...).CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure line:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	must(t, err)
	return v
}

func TestSizeMemory(t *testing.T) {
	for _, c := range []struct {
		disk      int64
		high, max int64
	}{
		{0, 1536, 2048},         // no database yet: 1 GiB loaded assumed
		{6 << 10, 384, 512},     // tiny test database: 256 MiB floor
		{240 << 20, 1472, 1920}, // today's main+daily+bytecode: 960 MiB loaded
		{400 << 20, 2432, 3200}, // a bigger database
	} {
		m := SizeMemory(c.disk)
		if m.HighMiB != c.high || m.MaxMiB != c.max || m.HighMiB*2 < m.LoadedMiB*3 {
			t.Errorf("disk %d: High %d Max %d, want %d %d", c.disk, m.HighMiB, m.MaxMiB, c.high, c.max)
		}
	}
}

// TestPackagedBinary: where the Debian package put clamgate in /usr/bin,
// the gateway unit runs that binary, with ExecReload for live reloads.
func TestPackagedBinary(t *testing.T) {
	root := fixture(t, "debian")
	bin := filepath.Join(root, PackagedBinary)
	must(t, os.MkdirAll(filepath.Dir(bin), 0o755))
	must(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
	p := plan(t, root)
	for _, c := range p.Changes {
		if c.Path != GatewayUnit {
			continue
		}
		unit := string(c.Content)
		if !strings.Contains(unit, "ExecStart="+PackagedBinary+" serve") || !strings.Contains(unit, "ExecReload=/bin/kill -HUP $MAINPID") {
			t.Errorf("gateway unit does not run the packaged binary:\n%s", unit)
		}
		for _, n := range p.Notes {
			if strings.Contains(n, "does not exist yet") {
				t.Errorf("plan asks for a binary the package installed: %s", n)
			}
		}
		return
	}
	t.Fatal("plan writes no gateway unit")
}

// withPackage installs what the Debian package puts on a host: the binary,
// the unit and the sysusers file, from packaging/debian.
func withPackage(t *testing.T, root string) {
	t.Helper()
	for dst, src := range map[string]string{
		PackagedBinary:                         "",
		"/lib/systemd/system/clamgate.service": "../../packaging/debian/clamgate.service",
		PackagedSysusers:                       "../../packaging/debian/clamgate.sysusers",
	} {
		content, mode := []byte("#!/bin/sh\n"), fs.FileMode(0o755)
		if src != "" {
			mode = 0o644
			var err error
			content, err = os.ReadFile(src)
			must(t, err)
		}
		p := filepath.Join(root, dst)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, content, mode))
	}
}
