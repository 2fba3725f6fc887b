package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"clamgate/internal/config"
	"clamgate/internal/testenv"
)

// Users of TestClamdscanAfterDeploy: one in the clamav group, one not.
const (
	scanMember   = "cghcliscan"
	scanOutsider = "cghclinoscan"
)

// TestClamdscanAfterDeploy runs the real clamdscan, reading the clamd.conf
// deploy edits (ClamdConfEdit of the Debian fixture's), against a gateway
// serving the host-wide listener and policy as deploy writes them (only the
// socket's directory moved into a temporary one, made as tmpfiles makes
// /run/clamgate/local), in every clamdscan mode: root and a member of the
// clamav group get verdicts, another user cannot connect.
func TestClamdscanAfterDeploy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the socket's group and the users")
	}
	bin, err := exec.LookPath("clamdscan")
	if err != nil {
		t.Fatal("clamdscan is not installed (scripts/install-deps.sh --test installs clamav-daemon)")
	}
	clamavGroup, err := user.LookupGroup("clamav")
	if err != nil {
		t.Fatal("no clamav group here (scripts/install-deps.sh --test installs clamav)")
	}
	h, err := Inspect(fixture(t, "debian"))
	must(t, err)
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	sockDir := filepath.Join(dir, "local")
	must(t, os.Mkdir(sockDir, 0o750))
	must(t, os.Chown(sockDir, 0, atoi(clamavGroup.Gid)))
	must(t, os.Chmod(sockDir, os.ModeSetgid|0o750)) // tmpfiles' 2750
	sock := filepath.Join(sockDir, "clamd.sock")

	toml := "[backend]\naddress = \"unix:" + clamd.Socket + "\"\n" + strings.ReplaceAll(localListener(h), LocalSocket, sock)
	cfg, err := config.Parse("local.toml", []byte(toml))
	must(t, err)
	testenv.StartGateway(t, cfg)

	conf := strings.ReplaceAll(ClamdConfEdit(string(h.read("/etc/clamav/clamd.conf"))), LocalSocket, sock)
	confPath := filepath.Join(dir, "clamd.conf")
	must(t, os.WriteFile(confPath, []byte(conf), 0o644))
	files := filepath.Join(dir, "files")
	must(t, os.Mkdir(files, 0o755))
	eicar, clean := filepath.Join(files, "eicar.txt"), filepath.Join(files, "clean.txt")
	must(t, os.WriteFile(eicar, []byte(testenv.EICAR), 0o644))
	must(t, os.WriteFile(clean, []byte("nothing to see\n"), 0o644))

	member := scanUser(t, scanMember, "clamav")
	outsider := scanUser(t, scanOutsider, "")
	for _, mode := range [][]string{nil, {"--fdpass"}, {"--stream"}, {"--multiscan"}} {
		for _, who := range []struct {
			name string
			cred *syscall.Credential
		}{{"root", nil}, {scanMember, member}} {
			code, out := clamdscan(t, bin, who.cred, append([]string{"--config-file=" + confPath}, append(mode, eicar)...)...)
			if code != 1 || !strings.Contains(out, eicar+": "+testenv.EicarThreat+" FOUND") {
				t.Errorf("%s clamdscan %v EICAR: exit %d\n%s", who.name, mode, code, out)
			}
			code, out = clamdscan(t, bin, who.cred, append([]string{"--config-file=" + confPath}, append(mode, clean)...)...)
			if code != 0 || !strings.Contains(out, clean+": OK") {
				t.Errorf("%s clamdscan %v clean: exit %d\n%s", who.name, mode, code, out)
			}
		}
		code, out := clamdscan(t, bin, outsider, append([]string{"--config-file=" + confPath}, append(mode, clean)...)...)
		if code != 2 || strings.Contains(out, ": OK") {
			t.Errorf("%s (not in clamav) clamdscan %v: exit %d, want 2 and no verdict\n%s", scanOutsider, mode, code, out)
		}
	}
}

func clamdscan(t *testing.T, bin string, cred *syscall.Credential, args ...string) (int, string) {
	cmd := exec.Command(bin, append([]string{"--no-summary"}, args...)...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Dir = &out, &out, "/"
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// scanUser creates a system user (in group, when given) for this test
// only, and removes it afterwards.
func scanUser(t *testing.T, name, group string) *syscall.Credential {
	t.Helper()
	args := []string{"--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"}
	if group != "" {
		args = append(args, "--groups", group)
	}
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", append(args, name)...).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", name, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	}
	u, err := user.Lookup(name)
	must(t, err)
	cred := &syscall.Credential{Uid: uint32(atoi(u.Uid)), Gid: uint32(atoi(u.Gid)), Groups: []uint32{}}
	ids, err := u.GroupIds()
	must(t, err)
	for _, id := range ids {
		cred.Groups = append(cred.Groups, uint32(atoi(id)))
	}
	return cred
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestEngineIDsAreNoHostAccount (issue 23 item 6): with the container
// engine, the socket directory deploy gives the engine, and so the uid its
// clamd runs as, belong to no account of the host, whichever image: the
// upstream image's uid 100 is messagebus on Debian 12 (this machine too),
// which could otherwise replace clamd's socket with a fake clamd answering
// OK. A host whose accounts or subordinate ranges meet the mapped range
// is refused.
func TestEngineIDsAreNoHostAccount(t *testing.T) {
	for _, host := range []string{"debian", "rocky"} {
		root := fixture(t, host)
		for _, image := range []string{"", "localhost/clamgate/clamd@sha256:" + strings.Repeat("0", 64)} {
			p := plan(t, root, func(o *Options) { o.Image = image })
			line := ""
			for _, l := range strings.Split(Tmpfiles(p.Host, p.Engine), "\n") {
				if strings.HasPrefix(l, "d "+EngineDir+" ") {
					line = l
				}
			}
			f := strings.Fields(line)
			if len(f) < 4 {
				t.Fatalf("%s %q: no tmpfiles line for %s", host, image, EngineDir)
			}
			uid := atoi(f[3])
			for _, passwd := range []string{filepath.Join(root, "etc/passwd"), "/etc/passwd"} {
				b, _ := os.ReadFile(passwd)
				for _, entry := range strings.Split(string(b), "\n") {
					if p := strings.Split(entry, ":"); len(p) > 2 && p[2] == f[3] {
						t.Errorf("%s %q: %s belongs to uid %d, %s's %s", host, image, EngineDir, uid, passwd, p[0])
					}
				}
			}
			if uid < EngineIDBase || !strings.Contains(p.Engine.PlainUnit(), "--uidmap="+idMap()) || !strings.Contains(p.Engine.Quadlet(), "UIDMap="+idMap()) {
				t.Errorf("%s %q: socket directory uid %d, units without the mapping", host, image, uid)
			}
		}
		must(t, os.WriteFile(filepath.Join(root, "etc/subuid"), []byte(fmt.Sprintf("someone:%d:65536\n", EngineIDBase+1000)), 0o644))
		if _, err := Build(Options{Root: root, Engine: KindContainer}); err == nil || !strings.Contains(err.Error(), "someone") {
			t.Errorf("%s: a subuid range inside the engine's ids: %v", host, err)
		}
	}
}
