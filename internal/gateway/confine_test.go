package gateway_test

// The confinement attacks of issue 14, each run by an unprivileged local
// user against a gateway configured like a real host. Each one scanned a
// file its user could not read, or got a verdict for another file than the
// kernel opens, before the roots were held by descriptor and resolved with
// openat2.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"clamgate/internal/gateway"
	"clamgate/internal/testenv"
	"clamgate/internal/testuser"
)

// localUser is the unprivileged local user the confinement attacks run as.
type localUser struct {
	uid, gid int
	bin      string // a copy of this test binary it can execute, as its client
}

// newAttacker creates the test's own attacker account, removed when the
// test ends.
func newAttacker(t *testing.T) localUser {
	t.Helper()
	needRoot(t)
	u := testuser.New(t, "cgconfine")
	uid, gid := u.UID, u.GID
	self, err := os.Executable()
	noErr(t, err)
	bin := filepath.Join(testenv.TempDir(t), "client")
	src, err := os.ReadFile(self)
	noErr(t, err)
	noErr(t, os.WriteFile(bin, src, 0o755))
	return localUser{uid: uid, gid: gid, bin: bin}
}

// dir makes a directory owned by the attacker.
func (a localUser) dir(t *testing.T, p string) string {
	t.Helper()
	must(t, os.MkdirAll(p, 0o755))
	must(t, os.Chown(p, a.uid, a.gid))
	return p
}

// client returns the shell words that make the attacker's client send one
// command (and, for FILDES, pass a descriptor of fdPath opened fdMode).
func (a localUser) client(sock, command, fdPath, fdMode string) string {
	return fmt.Sprintf("exec env CONFINE_SOCK=%q CONFINE_CMD=%q CONFINE_FD=%q CONFINE_FD_MODE=%q %s -test.run='^TestConfineClient$'",
		sock, command, fdPath, fdMode, a.bin)
}

// run runs a shell script as the attacker and returns the gateway's reply
// its client printed.
func (a localUser) run(t *testing.T, wrap []string, script string) string {
	t.Helper()
	args := append(append(wrap, "sh", "-c"), script)
	res := runClient(t, runOpts{asUID: a.uid, asGID: a.gid}, args[0], args[1:]...)
	reply, ok := strings.CutPrefix(res.Stdout, "REPLY ")
	if res.Code != 0 || !ok {
		t.Fatalf("attack script failed\n%s", res)
	}
	return reply
}

// TestConfineClient is the attacker's client, when the attacks run this
// binary as another user; otherwise it does nothing.
func TestConfineClient(t *testing.T) {
	sock := os.Getenv("CONFINE_SOCK")
	if sock == "" {
		t.Skip("the client of the confinement attacks (run by them)")
	}
	reply, err := confineClient(sock, os.Getenv("CONFINE_CMD"), os.Getenv("CONFINE_FD"), os.Getenv("CONFINE_FD_MODE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("REPLY %s", reply)
	os.Exit(0)
}

func confineClient(sock, command, fdPath, fdMode string) (string, error) {
	c, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("z" + command + "\x00")); err != nil {
		return "", err
	}
	if fdPath != "" {
		flags := map[string]int{"rdonly": unix.O_RDONLY, "wronly": unix.O_WRONLY | unix.O_APPEND, "path": unix.O_PATH}[fdMode]
		fd, err := unix.Open(fdPath, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("open %s (%s): %w", fdPath, fdMode, err)
		}
		defer unix.Close(fd)
		if _, _, err := c.(*net.UnixConn).WriteMsgUnix([]byte{0}, unix.UnixRights(fd), nil); err != nil {
			return "", err
		}
	}
	reply, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, unix.ECONNRESET) {
		return "", err
	}
	return strings.TrimRight(string(reply), "\x00"), nil
}

// secretEICAR is a file only root can read, outside every root: scanning
// it answers FOUND, which is how an attack shows it was read.
func secretEICAR(t *testing.T) string {
	dir := testenv.TempDir(t)
	p := filepath.Join(dir, "secret.com")
	must(t, os.WriteFile(p, []byte(testenv.EICAR), 0o600))
	return p
}

func refused(reply string) bool {
	return strings.HasSuffix(reply, "ERROR") && !strings.Contains(reply, "FOUND") && !strings.HasSuffix(reply, "OK")
}

// TestAttackMagicLinkInNamespace: the attacker bind-mounts a directory it
// cannot read over one in its root, inside its own user and mount
// namespace, and links to the file through /proc/<pid>/root. The path the
// kernel gives for that file is the namespace's, inside the root.
func TestAttackMagicLinkInNamespace(t *testing.T) {
	a := newAttacker(t)
	if res := runClient(t, runOpts{asUID: a.uid, asGID: a.gid}, "unshare", "-Urm", "true"); res.Code != 0 {
		t.Skipf("this kernel does not let an unprivileged user create user and mount namespaces: %s", res.Stderr)
	}
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	secret := secretEICAR(t)
	root := a.dir(t, filepath.Join(testenv.TempDir(t), "root"))
	a.dir(t, filepath.Join(root, "m"))
	gw, _ := gatewayFor(t, clamd, fmt.Sprintf("roots = [%q]", root))
	script := fmt.Sprintf(`mount --bind %s %s/m && ln -s /proc/$$/root%s/m/secret.com %s/l && %s`,
		filepath.Dir(secret), root, root, root, a.client(gw, "SCAN "+root+"/l", "", ""))
	if reply := a.run(t, []string{"unshare", "-Urm"}, script); !refused(reply) {
		t.Errorf("SCAN of a /proc/<pid>/root link into a bind mount: %q, want a refusal", reply)
	}
}

// TestAttackDeletedMagicLink: a /proc/<pid>/fd/N link to a deleted file
// whose name was inside the root.
func TestAttackDeletedMagicLink(t *testing.T) {
	a := newAttacker(t)
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	root := a.dir(t, filepath.Join(testenv.TempDir(t), "root"))
	must(t, os.WriteFile(filepath.Join(root, "x.com"), []byte(testenv.EICAR), 0o644))
	must(t, os.Chown(filepath.Join(root, "x.com"), a.uid, a.gid))
	gw, _ := gatewayFor(t, clamd, fmt.Sprintf("roots = [%q]", root))
	script := fmt.Sprintf(`exec 3<%[1]s/x.com && rm %[1]s/x.com && ln -s /proc/$$/fd/3 %[1]s/l && %[2]s`,
		root, a.client(gw, "SCAN "+root+"/l", "", ""))
	if reply := a.run(t, nil, script); !refused(reply) {
		t.Errorf("SCAN of a /proc/<pid>/fd link to a deleted file: %q, want a refusal", reply)
	}
}

// TestAttackRootSwap: the attacker owns the root's parent (as amavis owns
// /var/lib/amavis), renames the root away and links "/" in its place.
func TestAttackRootSwap(t *testing.T) {
	a := newAttacker(t)
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	secret := secretEICAR(t)
	parent := a.dir(t, filepath.Join(testenv.TempDir(t), "home"))
	root := a.dir(t, filepath.Join(parent, "tmp"))

	t.Run("refused at start without the policy's consent", func(t *testing.T) {
		err := startFails(t, confineConfig(t, clamd, root, ""))
		if err == nil || !strings.Contains(err.Error(), "allow_writable_root_ancestors") {
			t.Errorf("gateway with a root in a user's directory: %v, want refused naming allow_writable_root_ancestors", err)
		}
	})
	t.Run("swap while running", func(t *testing.T) {
		cfg := mustParse(t, confineConfig(t, clamd, root, "allow_writable_root_ancestors = true"))
		testenv.StartGateway(t, cfg)
		gw := strings.TrimPrefix(cfg.Listeners[0].Address, "unix:")
		script := fmt.Sprintf(`mv %[1]s %[2]s/old && ln -s / %[1]s && %[3]s`, root, parent, a.client(gw, "SCAN "+root+secret, "", ""))
		if reply := a.run(t, nil, script); !refused(reply) {
			t.Errorf("SCAN through a root swapped for a link to /: %q, want a refusal", reply)
		}
	})
	t.Run("swapped before start", func(t *testing.T) {
		// The root is now the attacker's link to "/".
		err := startFails(t, confineConfig(t, clamd, root, "allow_writable_root_ancestors = true"))
		if err == nil || !strings.Contains(err.Error(), "is a symlink") {
			t.Errorf("gateway with a root swapped for a symlink: %v, want refused", err)
		}
	})
}

// startFails runs a gateway that should refuse to start; one that starts
// serves for 20 s and returns nil.
func startFails(t *testing.T, src string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return gateway.Run(ctx, mustParse(t, src), slog.New(slog.DiscardHandler))
}

func confineConfig(t *testing.T, c *testenv.Clamd, root, extra string) string {
	return fmt.Sprintf(`
[backend]
address = "unix:%s"
[[listener]]
address = "unix:%s"
policy = "test"
mode = "0666"
[policy.test]
roots = [%q]
%s
`, c.Socket, filepath.Join(testenv.TempDir(t), "gw.sock"), root, extra)
}

// TestAttackDotDotAfterSymlink: the kernel resolves lnk/.. to the parent
// of lnk's target; a gateway that cleans the path text scans another file
// and answers OK for the one the client meant.
func TestAttackDotDotAfterSymlink(t *testing.T) {
	a := newAttacker(t)
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	root := a.dir(t, filepath.Join(testenv.TempDir(t), "root"))
	gw, _ := gatewayFor(t, clamd, fmt.Sprintf("roots = [%q]", root))
	script := fmt.Sprintf(`cd %[1]s && mkdir -p sub/dir && printf '%%s' '%[2]s' > sub/x.com && echo clean > x.com && ln -s sub/dir lnk && %[3]s`,
		root, testenv.EICAR, a.client(gw, "SCAN "+root+"/lnk/../x.com", "", ""))
	want := root + "/lnk/../x.com: " + testenv.EicarThreat + " FOUND"
	if reply := a.run(t, nil, script); reply != want {
		t.Errorf("SCAN lnk/../x.com: %q, want %q (the file the kernel opens)", reply, want)
	}
}

// TestAttackWalkBounds: a tree deeper than the policy's max_walk_depth, or
// a directory with more entries than its max_dir_entries, fails closed
// instead of holding a descriptor per level or the whole listing.
func TestAttackWalkBounds(t *testing.T) {
	a := newAttacker(t)
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	t.Run("depth", func(t *testing.T) {
		root := a.dir(t, filepath.Join(testenv.TempDir(t), "root"))
		gw, _ := gatewayFor(t, clamd, fmt.Sprintf("roots = [%q]", root))
		deep := "d" + strings.Repeat("/d", 69)
		script := fmt.Sprintf(`cd %[1]s && mkdir -p %[2]s && echo clean > %[2]s/f && %[3]s`, root, deep, a.client(gw, "CONTSCAN "+root+"/d", "", ""))
		if reply := a.run(t, nil, script); !refused(reply) || !strings.Contains(reply, "max_walk_depth") {
			t.Errorf("CONTSCAN of a 70-level tree: %q, want an ERROR naming max_walk_depth", reply)
		}
	})
	t.Run("entries", func(t *testing.T) {
		root := a.dir(t, filepath.Join(testenv.TempDir(t), "root"))
		gw, _ := gatewayFor(t, clamd, fmt.Sprintf("roots = [%q]\nmax_dir_entries = 500", root))
		script := fmt.Sprintf(`mkdir %[1]s/wide && cd %[1]s/wide && seq 1 501 | xargs touch && %[2]s`, root, a.client(gw, "CONTSCAN "+root+"/wide", "", ""))
		if reply := a.run(t, nil, script); !refused(reply) || !strings.Contains(reply, "max_dir_entries") {
			t.Errorf("CONTSCAN of a 501-entry directory: %q, want an ERROR naming max_dir_entries", reply)
		}
		must(t, os.Remove(filepath.Join(root, "wide/501")))
		if reply := a.run(t, nil, a.client(gw, "CONTSCAN "+root+"/wide", "", "")); reply != root+"/wide: OK" {
			t.Errorf("CONTSCAN of a 500-entry directory: %q", reply)
		}
	})
}

// TestAttackFildesNotReadable: clamd answers OK for a descriptor it cannot
// read; the gateway refuses it.
func TestAttackFildesNotReadable(t *testing.T) {
	a := newAttacker(t)
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := a.dir(t, testenv.TempDir(t))
	eicar := filepath.Join(dir, "eicar.com")
	must(t, os.WriteFile(eicar, []byte(testenv.EICAR), 0o644))
	must(t, os.Chown(eicar, a.uid, a.gid))
	gw, _ := gatewayFor(t, clamd, "")
	for _, tc := range []struct {
		path, mode, want string
	}{
		{eicar, "rdonly", "fd[N]: " + testenv.EicarThreat + " FOUND"},
		{eicar, "wronly", "fd[N]: Not open for reading ERROR"},
		{eicar, "path", "fd[N]: Not open for reading ERROR"},
		{dir, "rdonly", "fd[N]: Not a regular file ERROR"},
	} {
		reply := normalize([]byte(a.run(t, nil, a.client(gw, "FILDES", tc.path, tc.mode))), false)
		if reply != tc.want {
			t.Errorf("FILDES of %s opened %s: %q, want %q", filepath.Base(tc.path), tc.mode, reply, tc.want)
		}
	}
}
