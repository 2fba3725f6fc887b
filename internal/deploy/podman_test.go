package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/testenv"
)

// TestPodmanEngine runs the rendered container (a local image built by
// deploy/image/build.sh from this host's clamd, the test database) and
// checks what the article's checklist asks of it.
func TestPodmanEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds an image and starts a container")
	}
	for _, tool := range []string{"podman", "clamd", "ldd"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				testenv.MissingPeer(t, tool, "run scripts/install-deps.sh --test (apt-get install podman runc clamav-daemon)")
			}
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("rootful podman needs root")
	}
	// A tag of this run's own, removed with its image when the test ends,
	// so that no run leaves an image behind or removes another's.
	tag := fmt.Sprintf("localhost/clamgate/clamd-test:%d", os.Getpid())
	out, err := exec.Command("../../deploy/image/build.sh", tag).CombinedOutput()
	if err != nil {
		t.Skipf("podman cannot build an image here: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("podman", "rmi", "--force", tag).CombinedOutput(); err != nil {
			t.Errorf("podman rmi %s: %v\n%s", tag, err, out)
		}
	})
	ref := strings.TrimSpace(string(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:]))
	img, err := ParseImage(ref, false)
	if err != nil || img.Upstream {
		t.Fatalf("build.sh printed %q: %v", ref, err)
	}
	uid, gid := idsOf(t, "clamav")
	e := NewEngine(img, &Host{ClamdUID: uid, ClamdGID: gid, DBDir: "/var/lib/clamav"})
	dir := t.TempDir()
	paths := engineDirs(t, dir, e)
	name := fmt.Sprintf("clamgate-test-%d", os.Getpid())
	args := e.PodmanArgs("")
	for i, a := range args {
		for host, test := range paths {
			a = strings.Replace(a, "="+host+":", "="+test+":", 1)
		}
		args[i] = strings.Replace(a, "--name="+containerName, "--name="+name, 1)
	}
	if out, err := exec.Command("podman", args...).CombinedOutput(); err != nil {
		t.Skipf("podman cannot run containers here: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", name).Run() })
	sock := filepath.Join(paths[EngineDir], "clamd.sock")
	engine, _ := clamd.New("unix:"+sock, 30*time.Second)
	if reply := waitPing(t, engine, name); reply != "PONG" {
		t.Fatalf("PING: %q", reply)
	}
	if reply, err := engine.Instream(context.Background(), strings.NewReader(testenv.EICAR)); err != nil || !strings.HasSuffix(reply, "FOUND") {
		t.Errorf("EICAR: %q %v", reply, err)
	}
	checkProcess(t, name)
	gatewayInFront(t, sock)
}

// gatewayInFront puts the gateway before the container's clamd and scans a
// host file the container cannot see: the gateway opens it and hands clamd
// the descriptor, which is why the sandboxed engine needs no access to
// anyone's files. clamd asked for the same path itself cannot find it.
func gatewayInFront(t *testing.T, engineSock string) {
	dir := testenv.TempDir(t)
	file := filepath.Join(dir, "mail", "part-0001")
	must(t, os.MkdirAll(filepath.Dir(file), 0o755))
	must(t, os.WriteFile(file, []byte(testenv.EICAR), 0o644))
	gwSock := filepath.Join(dir, "gw.sock")
	cfg, err := config.Parse("test.toml", []byte(fmt.Sprintf(`
[backend]
address = "unix:%s"
[[listener]]
address = "unix:%s"
policy = "amavis"
[policy.amavis]
roots = [%q]
`, engineSock, gwSock, dir)))
	must(t, err)
	testenv.StartGateway(t, cfg)
	gw, _ := clamd.New("unix:"+gwSock, 30*time.Second)
	reply, err := gw.Command(context.Background(), "CONTSCAN "+filepath.Dir(file))
	if err != nil || !strings.HasPrefix(reply, file+": Eicar-Test-Signature") || !strings.HasSuffix(reply, " FOUND") {
		t.Errorf("CONTSCAN through the gateway: %q %v", reply, err)
	}
	direct, _ := clamd.New("unix:"+engineSock, 30*time.Second)
	if reply, _ := direct.Command(context.Background(), "SCAN "+file); !strings.HasSuffix(reply, "ERROR") {
		t.Errorf("the container's clamd reached a host file by path: %q", reply)
	}
}

func idsOf(t *testing.T, name string) (uid, gid int) {
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no %s user: %v", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// engineDirs makes the host side of every volume in a test directory.
func engineDirs(t *testing.T, dir string, e Engine) map[string]string {
	p := map[string]string{EngineDir: dir + "/engine", EngineTmp: dir + "/tmp", "/var/lib/clamav": dir + "/db", ClamdConf: dir + "/clamd.conf"}
	for _, d := range []string{p[EngineDir], p[EngineTmp], p["/var/lib/clamav"]} {
		must(t, os.MkdirAll(d, 0o755))
	}
	must(t, os.Chown(p[EngineDir], e.HostUID(), 0))
	must(t, os.Chmod(p[EngineDir], 0o2770))
	must(t, os.Chown(p[EngineTmp], e.HostUID(), e.HostGID()))
	must(t, os.Chmod(dir, 0o755))
	must(t, os.WriteFile(p[ClamdConf], []byte(e.ClamdConfFile()), 0o644))
	for _, f := range []string{"clamgate-test.hdb", "clamgate-test.ndb"} {
		src, err := os.ReadFile("../engine/testdb/" + f)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(p["/var/lib/clamav"], f), src, 0o644))
	}
	return p
}

// waitPing returns clamd's first answer to PING, once its socket accepts.
func waitPing(t *testing.T, c *clamd.Client, name string) string {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if reply, err := c.Command(context.Background(), "PING"); err == nil {
			return reply
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := exec.Command("podman", "logs", name).CombinedOutput()
	t.Fatalf("clamd did not answer on %s:\n%s", c, logs)
	return ""
}

// checkProcess: non-root, no effective capability, no_new_privs, no
// network interface but loopback, database read-only.
func checkProcess(t *testing.T, name string) {
	out, err := exec.Command("podman", "inspect", "-f", "{{.State.Pid}}", name).Output()
	must(t, err)
	pid := strings.TrimSpace(string(out))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	must(t, err)
	fields := map[string]string{}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(l, ":")
		fields[k] = strings.TrimSpace(v)
	}
	if uid := strings.Fields(fields["Uid"]); len(uid) == 0 || uid[0] == "0" || uid[1] == "0" {
		t.Errorf("clamd runs as uid %q", fields["Uid"])
	}
	if uid := strings.Fields(fields["Uid"]); len(uid) > 0 {
		if u, err := user.LookupId(uid[0]); err == nil {
			t.Errorf("clamd runs as uid %s, the host's %s: the user namespace mapping is missing", uid[0], u.Username)
		}
	}
	if fields["CapEff"] != "0000000000000000" || fields["CapPrm"] != "0000000000000000" {
		t.Errorf("CapEff %s CapPrm %s", fields["CapEff"], fields["CapPrm"])
	}
	if fields["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs %s", fields["NoNewPrivs"])
	}
	netdev, err := os.ReadFile("/proc/" + pid + "/net/dev")
	must(t, err)
	for _, l := range strings.Split(string(netdev), "\n")[2:] {
		if iface, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && iface != "lo" {
			t.Errorf("network interface %s in the container", iface)
		}
	}
	mounts, err := os.ReadFile("/proc/" + pid + "/mounts")
	must(t, err)
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && (f[1] == dbMount || f[1] == "/") && !strings.HasPrefix(f[3], "ro") {
			t.Errorf("%s is mounted %s", f[1], f[3])
		}
	}
	t.Logf("clamd: Uid %s, CapEff %s, NoNewPrivs %s", fields["Uid"], fields["CapEff"], fields["NoNewPrivs"])
}
