package doctor_test

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"clamgate/internal/config"
	"clamgate/internal/doctor"
	"clamgate/internal/testenv"
)

// avScanners is Debian's 15-av_scanners, cut down, with the ClamAV-clamd
// entry pointing at socket (commented out when socket is "").
func avScanners(socket string) string {
	entry := fmt.Sprintf(` ['ClamAV-clamd',
   \&ask_daemon, ["CONTSCAN {}\n", %q],
   qr/\bOK$/m, qr/\bFOUND$/m,
   qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],`, socket)
	if socket == "" {
		entry = "# ['ClamAV-clamd',\n#   \\&ask_daemon, [\"CONTSCAN {}\\n\", \"/var/run/clamav/clamd.ctl\"],\n#   qr/\\bOK$/m ],"
	}
	return "use strict;\n\n@av_scanners = (\n\n### http://www.clamav.net/\n" + entry +
		"\n# NOTE: run clamd under the same user as amavisd\n);\n\n@av_scanners_backup = (\n  ['ClamAV-clamscan', 'clamscan', \"--stdout {}\", [0], [1], qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],\n);\n\n1;\n"
}

// amavisTree is a host tree (world-traversable: probes run as nobody)
// whose amavis config names socket; a live socket is linked into it,
// since doctor looks for the host's files under Root.
func amavisTree(t *testing.T, socket string) string {
	root := testenv.TempDir(t)
	if _, err := os.Stat(socket); err == nil && socket != "" {
		symlink(t, root, socket, socket)
	}
	writeFile(t, root, "etc/amavis/conf.d/15-av_scanners", avScanners(socket))
	writeFile(t, root, "etc/amavis/conf.d/50-user", "use strict;\n$myhostname = 'mx.example.org';\n1;\n")
	return root
}

func TestAmavisScanner(t *testing.T) {
	engine := startClamd(t, clamdOpts{})
	live := func(root string) *doctor.Env {
		env := liveEnv()
		env.Root = root
		return env
	}
	expect(t, runOne(t, live(t.TempDir()), "amavis-scanner"), doctor.Pass, "amavis is not installed")
	expect(t, runOne(t, live(amavisTree(t, "")), "amavis-scanner"), doctor.Fail, "no uncommented ClamAV-clamd entry")
	expect(t, runOne(t, live(amavisTree(t, "/run/clamd.amavisd/clamd.sock")), "amavis-scanner"), doctor.Fail,
		"/etc/amavis/conf.d/15-av_scanners: /run/clamd.amavisd/clamd.sock: no such socket")
	expect(t, runOne(t, live(amavisTree(t, engine.socket)), "amavis-scanner"), doctor.Pass, engine.socket+": PONG")
	expect(t, runOne(t, treeEnv(amavisTree(t, "/run/clamgate/amavis.sock")), "amavis-scanner"), doctor.Pass, "offline: not contacted")

	t.Run("socket that does not answer", func(t *testing.T) {
		dir := testenv.TempDir(t)
		dead := filepath.Join(dir, "dead.sock")
		deadSocket(t, dead)
		expect(t, runOne(t, live(amavisTree(t, dead)), "amavis-scanner"), doctor.Fail, "connection refused")
	})
	t.Run("clamgate's listener admits amavis, not root", func(t *testing.T) {
		// After deploy the entry names clamgate's amavis socket, whose policy
		// refuses root (doctor): doctor asks as amavis, as the rehearsal showed.
		if _, err := user.Lookup("amavis"); err != nil || os.Geteuid() != 0 {
			t.Skip("needs root and an amavis user (amavisd-new)")
		}
		sock := filepath.Join(testenv.TempDir(t), "amavis.sock")
		cfg, err := config.Parse("gw.toml", []byte(fmt.Sprintf(`
[backend]
address = "unix:%s"
[[listener]]
address = "unix:%s"
policy = "amavis"
mode = "0666"
[policy.amavis]
users = ["amavis"]
`, engine.socket, sock)))
		must(t, err)
		testenv.StartGateway(t, cfg)
		expect(t, runOne(t, live(amavisTree(t, sock)), "amavis-scanner"), doctor.Pass, "(as amavis, uid", "root is refused by the listener's policy): PONG")
	})
	t.Run("Rocky layout", func(t *testing.T) {
		root := t.TempDir()
		symlink(t, root, engine.socket, engine.socket)
		writeFile(t, root, "etc/amavisd/amavisd.conf", "$daemon_group = 'amavis';\n"+avScanners(engine.socket))
		expect(t, runOne(t, live(root), "amavis-scanner"), doctor.Pass, "/etc/amavisd/amavisd.conf: "+engine.socket+": PONG")
	})
}

// TestAmavisGroups is trap 1 with real processes: a clamd whose socket
// is 0660 group daemon, and two processes named amavisd running as nobody,
// one that kept the socket's group and one that dropped it (as amavisd does
// without @daemon_groups). doctor reads their Groups and probes with them.
func TestAmavisGroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run processes as other users")
	}
	const daemonGID = 1
	engine := startClamd(t, clamdOpts{socketMode: "660", socketGroup: "daemon"})
	dir := testenv.TempDir(t)
	exe := filepath.Join(dir, "amavisd")
	sleep, err := os.ReadFile("/bin/sleep")
	must(t, err)
	must(t, os.WriteFile(exe, sleep, 0o755))
	dropped := startProcess(t, exe, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}})
	kept := startProcess(t, exe, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{daemonGID}})
	root := amavisTree(t, engine.socket)
	env := func(pids ...int) *doctor.Env {
		e := liveEnv(pids...)
		e.Root = root
		return e
	}
	r := runOne(t, env(dropped), "amavis-groups")
	expect(t, r, doctor.Fail, fmt.Sprintf("amavisd[%d] uid 65534 gid 65534 groups []", dropped), "refused (", "srw-rw---- daemon")
	if !strings.Contains(r.Fix, "@daemon_groups = qw(amavis daemon)") {
		t.Errorf("fix %q does not name @daemon_groups with the socket's group", r.Fix)
	}
	expect(t, runOne(t, env(kept), "amavis-groups"), doctor.Pass, "groups [1]: PONG")
	expect(t, runOne(t, env(), "amavis-groups"), doctor.Warn, "no amavisd process")

	tcp := t.TempDir()
	writeFile(t, tcp, "etc/amavis/conf.d/15-av_scanners", avScanners("127.0.0.1:3310"))
	e := liveEnv(dropped)
	e.Root = tcp
	expect(t, runOne(t, e, "amavis-groups"), doctor.Pass, "is TCP")
}
