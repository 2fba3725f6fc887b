package doctor_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/deploy"
	"clamgate/internal/doctor"
	"clamgate/internal/sigdb"
	"clamgate/internal/testenv"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// writeCVD writes a container the way sigtool does: a 512-byte
// "ClamAV-VDB:" header (build time, version, signatures, level, md5, dsig,
// builder, unix time) and a body doctor never reads.
func writeCVD(t *testing.T, path string, version int, built time.Time) {
	t.Helper()
	h := fmt.Sprintf("ClamAV-VDB:%s:%d:2070000:90:662932e452f6638e8af73c32c7b0f4cd:dsig:skynet:%d",
		built.UTC().Format("02 Jan 2006 15-04 -0700"), version, built.Unix())
	h += strings.Repeat(" ", sigdb.HeaderSize-len(h))
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(h+"\x1f\x8b body"), 0o644))
}

func TestDatabase(t *testing.T) {
	for _, tc := range []struct {
		name   string
		age    time.Duration // of daily.cld; <0: no file at all
		status doctor.Status
		want   string
	}{
		{"fresh", 3 * time.Hour, doctor.Pass, "version 27100, 4140000 signatures, built 2026-11-25 09:00 UTC (3 h ago)"},
		{"a day and a half", 36 * time.Hour, doctor.Warn, "(36 h ago)"},
		{"stale", 10 * 24 * time.Hour, doctor.Fail, "(10 days ago)"},
		{"empty", -1, doctor.Fail, "no signature file in /var/lib/clamav"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			db := filepath.Join(root, "var/lib/clamav")
			must(t, os.MkdirAll(db, 0o755))
			if tc.age >= 0 {
				writeCVD(t, filepath.Join(db, "main.cvd"), 62, now.Add(-400*24*time.Hour))
				writeCVD(t, filepath.Join(db, "daily.cld"), 27100, now.Add(-tc.age))
			}
			env := treeEnv(root)
			env.Now = now
			expect(t, runOne(t, env, "database"), tc.status, tc.want)
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		env := treeEnv(t.TempDir())
		expect(t, runOne(t, env, "database"), doctor.Fail, "no such file")
	})
}

func TestFreshclam(t *testing.T) {
	unit := "etc/systemd/system/multi-user.target.wants/clamav-freshclam.service"
	t.Run("enabled", func(t *testing.T) {
		root := t.TempDir()
		symlink(t, root, unit, "/usr/lib/systemd/system/clamav-freshclam.service")
		expect(t, runOne(t, treeEnv(root), "freshclam"), doctor.Pass, "enabled (multi-user.target.wants)")
	})
	t.Run("disabled", func(t *testing.T) {
		expect(t, runOne(t, treeEnv(t.TempDir()), "freshclam"), doctor.Fail, "not enabled and not running")
	})
	t.Run("masked", func(t *testing.T) {
		root := t.TempDir()
		symlink(t, root, "etc/systemd/system/clamav-freshclam.service", "/dev/null")
		expect(t, runOne(t, treeEnv(root), "freshclam"), doctor.Fail, "masked")
	})
	t.Run("running", func(t *testing.T) {
		// A real process whose name is freshclam: what doctor reads of it
		// is its name, wherever the unit files are.
		dir := testenv.TempDir(t)
		exe := filepath.Join(dir, "freshclam")
		sleep, err := os.ReadFile("/bin/sleep")
		must(t, err)
		must(t, os.WriteFile(exe, sleep, 0o755))
		pid := startProcess(t, exe, nil)
		env := liveEnv(pid)
		env.Root = t.TempDir()
		expect(t, runOne(t, env, "freshclam"), doctor.Pass, fmt.Sprintf("running (freshclam[%d])", pid))
	})
}

// startProcess runs exe for the length of the test, with cred if given.
func startProcess(t *testing.T, exe string, cred *syscall.Credential) int {
	t.Helper()
	cmd := exec.Command(exe, "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// debianUnits is a tree with amavis, clamav-daemon, the clamd@ template
// (as on Rocky) and c-icap installed, as packages leave them.
func debianUnits(t *testing.T) string {
	root := t.TempDir()
	lib := "usr/lib/systemd/system/"
	writeFile(t, root, lib+"amavisd.service", "[Unit]\nDescription=Amavis\nWants=clamd@amavisd.service\nAfter=network.target\n\n[Service]\nExecStart=/usr/sbin/amavisd\n")
	writeFile(t, root, lib+"clamd@.service", "[Unit]\nDescription=clamd %i\n[Service]\nExecStart=/usr/sbin/clamd -c /etc/clamd.d/%i.conf\n")
	writeFile(t, root, lib+"clamav-daemon.service", "[Unit]\nDescription=ClamAV\n[Service]\nExecStart=/usr/sbin/clamd --foreground=true\n")
	writeFile(t, root, lib+"c-icap.service", "[Unit]\nDescription=c-icap\n[Service]\nExecStart=/usr/bin/c-icap\n")
	writeFile(t, root, lib+"clamav-daemon.socket", "[Socket]\nListenStream=/run/clamav/clamd.ctl\n")
	writeFile(t, root, lib+"clamd.service", "[Unit]\nDescription=the shared engine (Quadlet's name): never a replaced unit\n")
	symlink(t, root, "etc/systemd/system/multi-user.target.wants/clamav-daemon.service", "/"+lib+"clamav-daemon.service")
	return root
}

func maskAll(t *testing.T, root string, units ...string) {
	for _, u := range units {
		symlink(t, root, "etc/systemd/system/"+u, "/dev/null")
	}
}

func TestUnits(t *testing.T) {
	t.Run("nothing masked", func(t *testing.T) {
		root := debianUnits(t)
		masked := runOne(t, treeEnv(root), "units-masked")
		expect(t, masked, doctor.Fail,
			"c-icap.service NOT masked", "clamav-daemon.service NOT masked", "clamav-daemon.socket NOT masked", "clamd@amavisd.service NOT masked")
		if strings.Contains(masked.Measured, "clamd.service") {
			t.Errorf("clamd.service treated as replaced: %s", masked.Measured)
		}
		expect(t, runOne(t, treeEnv(root), "units-wants"), doctor.Fail, "amavisd.service Wants=clamd@amavisd.service (/usr/lib/systemd/system/amavisd.service): WILL START IT",
			"multi-user.target Wants (link)=clamav-daemon.service")
	})
	t.Run("disabled is not enough", func(t *testing.T) {
		root := debianUnits(t)
		must(t, os.Remove(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/clamav-daemon.service")))
		maskAll(t, root, "clamav-daemon.service", "c-icap.service")
		expect(t, runOne(t, treeEnv(root), "units-masked"), doctor.Fail, "clamd@amavisd.service NOT masked")
		expect(t, runOne(t, treeEnv(root), "units-wants"), doctor.Fail, "Wants=clamd@amavisd.service")
	})
	t.Run("all masked", func(t *testing.T) {
		root := debianUnits(t)
		maskAll(t, root, "clamav-daemon.service", "clamav-daemon.socket", "c-icap.service", "clamd@amavisd.service")
		expect(t, runOne(t, treeEnv(root), "units-masked"), doctor.Pass, "clamd@amavisd.service masked", "c-icap.service masked")
		expect(t, runOne(t, treeEnv(root), "units-wants"), doctor.Pass, "target masked, harmless")
	})
	t.Run("masked template covers its instances", func(t *testing.T) {
		root := debianUnits(t)
		maskAll(t, root, "clamav-daemon.service", "clamav-daemon.socket", "c-icap.service", "clamd@.service")
		expect(t, runOne(t, treeEnv(root), "units-masked"), doctor.Pass, "clamd@amavisd.service masked")
	})
	t.Run("a drop-in that requires the old daemon", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, root, "etc/systemd/system/squid.service.d/av.conf", "[Unit]\nRequires=c-icap.service\n")
		expect(t, runOne(t, treeEnv(root), "units-wants"), doctor.Fail, "squid.service Requires=c-icap.service (/etc/systemd/system/squid.service.d/av.conf)")
	})
	t.Run("no clamd units", func(t *testing.T) {
		expect(t, runOne(t, treeEnv(t.TempDir()), "units-masked"), doctor.Pass, "no replaced clamd unit installed")
		expect(t, runOne(t, treeEnv(t.TempDir()), "units-wants"), doctor.Pass, "no unit depends")
	})
}

const digest = "sha256:60e70e270d5703992f7c4f2c5c998a4709abf94153e80af8c461aa3c02513934"

func TestImageDigest(t *testing.T) {
	quadlet := func(image string) string {
		return "[Unit]\nDescription=clamd\n[Container]\nContainerName=clamd\nImage=" + image + "\nNoNewPrivileges=true\n[Service]\nMemoryMax=3G\n"
	}
	plain := func(image string) string {
		return "[Unit]\nDescription=clamd (podman run)\n[Service]\nEnvironment=IMAGE=" + image + "\n" +
			"ExecStart=/usr/bin/podman --runtime runc run --rm --replace --name clamd --network none \\\n" +
			"  --cap-drop all --security-opt no-new-privileges -v /var/lib/clamav:/var/lib/clamav-host:ro \\\n" +
			"  --ulimit nofile=1024:1024 ${IMAGE} clamd --foreground\n"
	}
	tree := func(q, p string) string {
		root := t.TempDir()
		if q != "" {
			writeFile(t, root, doctor.ClamdQuadlet, quadlet(q))
		}
		if p != "" {
			writeFile(t, root, "etc/systemd/system/"+doctor.ClamdPlainUnit, plain(p))
		}
		return root
	}
	pinned := "docker.io/clamav/clamav@" + digest
	expect(t, runOne(t, treeEnv(tree(pinned, pinned)), "image-digest"), doctor.Pass, "clamd.container: "+pinned, "clamgate-clamd.service: "+pinned)
	expect(t, runOne(t, treeEnv(tree("docker.io/clamav/clamav:stable", pinned)), "image-digest"), doctor.Fail, "clamav:stable (NOT pinned)")
	expect(t, runOne(t, treeEnv(tree(pinned, "localhost/clamd:latest")), "image-digest"), doctor.Fail, "localhost/clamd:latest (NOT pinned)")
	expect(t, runOne(t, treeEnv(tree("", "")), "image-digest"), doctor.Warn, "no clamd container definition")
}

// hardenedUnit is a gateway unit that systemd-analyze scores at 0.4.
const hardenedUnit = `[Unit]
Description=clamgate
[Service]
Type=notify
ExecStart=/usr/local/bin/clamgate serve --config /etc/clamgate/clamgate.toml
DynamicUser=yes
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateNetwork=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
UMask=0077
IPAddressDeny=any
DevicePolicy=closed
RemoveIPC=yes
KeyringMode=private
[Install]
WantedBy=multi-user.target
`

// TestExposure scores real unit files with the real systemd-analyze.
func TestExposure(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		testenv.MissingPeer(t, "systemd-analyze", "run scripts/install-deps.sh --test (apt-get install systemd)")
	}
	unit := "etc/systemd/system/" + doctor.GatewayUnit
	hardened, bare := t.TempDir(), t.TempDir()
	writeFile(t, hardened, unit, hardenedUnit)
	writeFile(t, bare, unit, "[Unit]\nDescription=clamgate\n[Service]\nExecStart=/usr/local/bin/clamgate serve\n")
	expect(t, runOne(t, treeEnv(hardened), "unit-exposure"), doctor.Pass, "/etc/systemd/system/clamgate.service: 0.4 SAFE")
	expect(t, runOne(t, treeEnv(bare), "unit-exposure"), doctor.Fail, "9.6 UNSAFE")
	expect(t, runOne(t, treeEnv(t.TempDir()), "unit-exposure"), doctor.Warn, "clamgate.service not found")

	// The Debian package's unit alone, then with the drop-in deploy adds.
	packaged, err := os.ReadFile("../../packaging/debian/clamgate.service")
	if err != nil {
		t.Fatal(err)
	}
	dropIn, err := deploy.GatewayDropInFile([]byte(deploy.GatewayUnitFile(deploy.Listening{TCP: []string{"127.0.0.1:1344"}}, deploy.PackagedBinary)), packaged)
	if err != nil {
		t.Fatal(err)
	}
	pkg := t.TempDir()
	writeFile(t, pkg, "lib/systemd/system/"+doctor.GatewayUnit, string(packaged))
	expect(t, runOne(t, treeEnv(pkg), "unit-exposure"), doctor.Warn, "/lib/systemd/system/clamgate.service: 2.8 OK")
	writeFile(t, pkg, strings.TrimPrefix(deploy.GatewayDropIn, "/"), dropIn)
	expect(t, runOne(t, treeEnv(pkg), "unit-exposure"), doctor.Pass, "/lib/systemd/system/clamgate.service + "+deploy.GatewayDropIn+": 0.6 SAFE")
}
