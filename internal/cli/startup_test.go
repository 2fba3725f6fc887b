package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/startup"
	"clamgate/internal/testenv"
)

// parityUser is the unprivileged service user of TestStartupParity.
const parityUser = "cghcliparity"

// unknownUser names a user and group no host has (TestOfflineUnknownUser).
const unknownUser = "cghcfg-no-such-user"

// startupCase is one configuration serve refuses to start with. check
// names the startup.List entry that refuses it ("parse" for the parser).
type startupCase struct {
	name, check string
	asUser      bool // serve runs as parityUser, config check --as-user it
	engineOnly  bool // a managed engine, no [backend]
	key         string
	conf        string // $DIR is the case's directory; $CLAMD a real clamd
	setup       func(t *testing.T, dir string)
}

var startupCases = []startupCase{
	{name: "unknown key", check: "parse", key: "backend.adress",
		conf: "[backend]\nadress = \"unix:$CLAMD\"\n"},
	{name: "policy user the host does not know", check: "users and groups", key: "policy.p.users",
		conf: "[[listener]]\naddress = \"unix:$DIR/clamd.sock\"\npolicy = \"p\"\n[policy.p]\nusers = [\"" + unknownUser + "\"]\n"},
	{name: "socket group the host does not know", check: "users and groups", key: "listener[0].group",
		conf: "[[listener]]\naddress = \"unix:$DIR/clamd.sock\"\npolicy = \"p\"\ngroup = \"" + unknownUser + "\"\n[policy.p]\n"},
	{name: "root below a directory amavis owns", check: "roots", key: "policy.amavis.roots",
		conf: "[policy.amavis]\nroots = [\"$DIR/amavis/tmp\"]\n",
		setup: func(t *testing.T, dir string) {
			must(t, os.MkdirAll(filepath.Join(dir, "amavis", "tmp"), 0o750))
			must(t, os.Chown(filepath.Join(dir, "amavis"), 65534, 65534))
		}},
	{name: "root the service user cannot reach", check: "roots", asUser: true, key: "policy.files.roots",
		conf: "[policy.files]\nroots = [\"$DIR/private/files\"]\n",
		setup: func(t *testing.T, dir string) {
			must(t, os.MkdirAll(filepath.Join(dir, "private", "files"), 0o755))
			must(t, os.Chmod(filepath.Join(dir, "private"), 0o700))
		}},
	{name: "root writable by everyone", check: "roots", key: "policy.files.roots",
		conf: "[policy.files]\nroots = [\"$DIR/public\"]\n",
		setup: func(t *testing.T, dir string) {
			must(t, os.Mkdir(filepath.Join(dir, "public"), 0o755))
			must(t, os.Chmod(filepath.Join(dir, "public"), 0o777))
		}},
	{name: "TLS certificate that does not parse", check: "tls files", key: "listener[0].tls_cert",
		conf: "[[listener]]\naddress = \"tls:127.0.0.1:0\"\npolicy = \"p\"\ntls_cert = \"$DIR/server.crt\"\ntls_key = \"$DIR/server.key\"\n[policy.p]\n",
		setup: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "server.crt"), []byte("not a certificate\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(dir, "server.key"), []byte("not a key\n"), 0o600))
		}},
	{name: "listener host name beyond loopback", check: "sockets", key: "listener[0].address",
		conf: "[[listener]]\naddress = \"tcp:cghcfg-no-such-host.invalid:3310\"\npolicy = \"p\"\n[policy.p]\n"},
	{name: "socket path is a file", check: "sockets", key: "listener[0].address",
		conf: "[[listener]]\naddress = \"unix:$DIR/clamd.sock\"\npolicy = \"p\"\n[policy.p]\n",
		setup: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "clamd.sock"), nil, 0o644))
		}},
	{name: "socket directory the service user cannot write", check: "sockets", asUser: true, key: "listener[0].address",
		conf:  "[[listener]]\naddress = \"unix:$DIR/run/clamd.sock\"\npolicy = \"p\"\n[policy.p]\n",
		setup: func(t *testing.T, dir string) { must(t, os.Mkdir(filepath.Join(dir, "run"), 0o755)) }},
	{name: "socket group not the service user's", check: "sockets", asUser: true, key: "listener[0].address",
		conf: "[[listener]]\naddress = \"unix:$DIR/run/clamd.sock\"\npolicy = \"p\"\ngroup = \"root\"\n[policy.p]\n",
		setup: func(t *testing.T, dir string) {
			must(t, os.Mkdir(filepath.Join(dir, "run"), 0o755))
			must(t, os.Chown(filepath.Join(dir, "run"), parityUID(t), -1))
		}},
	{name: "privileged status port", check: "http", asUser: true, key: "server.http",
		conf: "[server]\nhttp = \"tcp:127.0.0.1:1\"\n"},
	{name: "state directory the service user cannot create", check: "engine state directory", asUser: true, key: "engine.state_dir",
		conf: "[engine]\nstate_dir = \"$DIR/state/engine\"\n", engineOnly: true,
		setup: func(t *testing.T, dir string) { must(t, os.Mkdir(filepath.Join(dir, "state"), 0o755)) }},
	{name: "clamd missing", check: "engine program", key: "engine.clamd",
		conf: "[engine]\nclamd = \"$DIR/no-clamd\"\nstate_dir = \"$DIR/engine\"\n", engineOnly: true},
	{name: "empty engine database", check: "engine database", key: "engine.database",
		conf: "[engine]\ndatabase = \"$DIR/db\"\nstate_dir = \"$DIR/engine\"\n", engineOnly: true,
		setup: func(t *testing.T, dir string) { must(t, os.Mkdir(filepath.Join(dir, "db"), 0o755)) }},
	{name: "empty watched database", check: "watched database", key: "database.dir",
		conf:  "[database]\ndir = \"$DIR/db\"\nwatch = true\n",
		setup: func(t *testing.T, dir string) { must(t, os.Mkdir(filepath.Join(dir, "db"), 0o755)) }},
}

// TestStartupParity lists serve's start-up refusals, one configuration
// each, and shows that `config check` reports every one as file:line: key:,
// the very lines serve prints; the cases marked asUser are refused only
// for the service's (unprivileged) user, and config check finds them
// with --as-user. Every check of startup.List needs a case here.
func TestStartupParity(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range startupCases {
		covered[c.check] = true
	}
	for _, c := range startup.List() {
		if !covered[c.Name] {
			t.Errorf("start-up check %q has no case in startupCases", c.Name)
		}
	}
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	parityUID(t)
	for _, c := range startupCases {
		t.Run(c.name, func(t *testing.T) {
			dir := testenv.TempDir(t)
			if c.setup != nil {
				c.setup(t, dir)
			}
			path := filepath.Join(dir, "clamgate.toml")
			must(t, os.WriteFile(path, []byte(c.config(t, dir, clamd.Socket)), 0o644))
			serveCode, serveOut := serveAs(t, c.asUser, path)
			checkArgs := []string{"config", "check", "--config", path}
			if c.asUser {
				checkArgs = append(checkArgs, "--as-user", parityUser)
			}
			var out bytes.Buffer
			checkCode := Main(context.Background(), checkArgs, &out, &out)
			if serveCode != exitConfig || checkCode != exitConfig {
				t.Fatalf("exit codes: serve %d, config check %d, want %d for both\nserve:\n%s\nconfig check:\n%s", serveCode, checkCode, exitConfig, serveOut, out.String())
			}
			refusals := keyLines(path, serveOut)
			if len(refusals) == 0 || !strings.Contains(strings.Join(refusals, "\n"), ": "+c.key+": ") {
				t.Fatalf("serve's refusal does not name %s as %s:LINE: %s: ...:\n%s", c.key, path, c.key, serveOut)
			}
			for _, line := range refusals {
				if !strings.Contains(out.String(), line+"\n") {
					t.Errorf("serve refused with\n  %s\nbut config check printed\n%s", line, out.String())
				}
			}
			if c.asUser { // and root alone would not have seen it
				out.Reset()
				if Main(context.Background(), []string{"config", "check", "--config", path, "--as-user", "root"}, &out, &out); strings.Contains(out.String(), c.key) {
					t.Errorf("as root, config check already reports %s: the case does not need the service's user:\n%s", c.key, out.String())
				}
			}
		})
	}
}

func (c startupCase) config(t *testing.T, dir, clamd string) string {
	conf := c.conf
	if !c.engineOnly && !strings.Contains(conf, "[backend]") {
		conf = "[backend]\naddress = \"unix:$CLAMD\"\n" + conf
	}
	if !strings.Contains(conf, "[[listener]]") {
		conf += "[[listener]]\naddress = \"tcp:" + testenv.FreePort(t) + "\"\npolicy = \"base\"\n[policy.base]\n"
	}
	return strings.NewReplacer("$DIR", dir, "$CLAMD", clamd).Replace(conf)
}

// serveAs runs `clamgate serve --config path`, in this process or, for
// the service's user, as a child with its credentials. A serve that does
// not refuse is stopped after a while, and the test fails on its code.
func serveAs(t *testing.T, asUser bool, path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if !asUser {
		return Main(ctx, []string{"serve", "--config", path}, &out, &out), out.String()
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "serve", "--config", path)
	uid := uint32(parityUID(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	cmd.Dir, cmd.Stdout, cmd.Stderr = "/", &out, &out
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("serve as %s: %v", parityUser, err)
	}
	return 0, out.String()
}

// keyLines are the file:line: key: lines of output about path.
func keyLines(path, output string) []string {
	re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(path) + `:\d+: [a-z_.\[\]0-9]+: .*$`)
	return re.FindAllString(output, -1)
}

// parityUID creates parityUser once (a system user with its own group)
// and removes it when the test ends.
func parityUID(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the cases run serve and config check as another user")
	}
	if _, err := user.Lookup(parityUser); err != nil {
		if out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", parityUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", parityUser, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("userdel", parityUser).Run() })
	}
	u, err := user.Lookup(parityUser)
	must(t, err)
	uid, _ := strconv.Atoi(u.Uid)
	return uid
}

// TestCheckAsUserNeedsRoot: a user who cannot switch checks as itself,
// and says so.
func TestCheckAsUserNeedsRoot(t *testing.T) {
	uid := uint32(parityUID(t))
	dir := testenv.TempDir(t)
	path := filepath.Join(dir, "clamgate.toml")
	must(t, os.WriteFile(path, []byte("[backend]\naddress = \"unix:/nonexistent/clamd.sock\"\n[[listener]]\naddress = \"tcp:127.0.0.1:3310\"\npolicy = \"p\"\n[policy.p]\n"), 0o644))
	cmd := exec.Command("/proc/self/exe", "config", "check", "--config", path, "--as-user", "root", "--timeout", "1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	cmd.Dir = "/"
	out, _ := cmd.CombinedOutput()
	if want := "note: checking as uid " + strconv.Itoa(int(uid)) + ", not as the service's user root"; !strings.Contains(string(out), want) {
		t.Errorf("want %q in:\n%s", want, out)
	}
}
