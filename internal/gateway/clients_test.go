package gateway_test

// Integration tests with REAL clamd client programs against the gateway:
// clamdscan, python3-pyclamd, Perl's ClamAV::Client, amavisd-new (the whole
// daemon, scanning mail through its own ClamAV-clamd entry), and peer
// permission checks made by processes running under other uids.
//
// Debian packages these tests need (besides clamav-daemon and
// clamav-testfiles, which testenv already needs):
//
//	clamdscan python3 python3-pyclamd libclamav-client-perl amavisd-new
//	util-linux (setpriv)
//
// A missing package fails the test with the package's name rather than
// skipping it, so that a CI without it cannot pass silently.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// clientTimeout bounds every client program a test runs.
const clientTimeout = 30 * time.Second

// ClamAV's own test file, from the clamav-testfiles package, and the name
// the test database gives it.
const (
	clamExe       = "/usr/share/clamav-testfiles/clam.exe"
	clamExeThreat = "ClamAV-Test-File.UNOFFICIAL"
)

// clientTree is a directory of files to scan: the root of the test policy.
type clientTree struct {
	Root string
}

func (tr clientTree) path(rel string) string { return filepath.Join(tr.Root, rel) }

// clientTreeFiles are the plain files of the tree and their contents.
var clientTreeFiles = map[string]string{
	"clean.txt":                 "just some clean text\n",
	"eicar.com":                 testenv.EICAR,
	"with space/eicar file.com": testenv.EICAR,
	"sub/deeper/clean.txt":      "clean, deeper\n",
	"cleandir/a.txt":            "a\n",
	"cleandir/b/c.txt":          "c\n",
}

// wantFound maps each infected file of the tree (relative) to its threat.
var wantFound = map[string]string{
	"eicar.com":                 testenv.EicarThreat,
	"with space/eicar file.com": testenv.EicarThreat,
	"sub/clam.exe":              clamExeThreat,
}

// makeClientTree writes the tree, readable by every uid (some clients run
// as other users), with ClamAV's test file copied in.
func makeClientTree(t *testing.T) clientTree {
	t.Helper()
	root := testenv.TempDir(t)
	for rel, body := range clientTreeFiles {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clam, err := os.ReadFile(clamExe)
	if err != nil {
		t.Fatalf("ClamAV's test file is missing (apt-get install clamav-testfiles): %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "sub/clam.exe"), clam, 0o644); err != nil {
		t.Fatal(err)
	}
	return clientTree{Root: root}
}

// clientGateway is a gateway started for client tests.
type clientGateway struct {
	Unix string // unix socket path
	TCP  string // 127.0.0.1:port
}

// startClientGateway starts a gateway in front of clamd with a unix
// listener (mode 0666, so the kernel lets every uid connect and only the
// gateway's policy decides) and, unless the policy names users or groups,
// a loopback TCP listener, both serving [policy.clients] (policyTOML).
func startClientGateway(t *testing.T, c *testenv.Clamd, policyTOML string) clientGateway {
	t.Helper()
	dir := testenv.TempDir(t)
	gw := clientGateway{Unix: filepath.Join(dir, "gw.sock"), TCP: testenv.FreePort(t)}
	// TCP has no peer credentials: a policy naming users or groups may
	// only be served on unix sockets (the configuration refuses it).
	tcpListener := fmt.Sprintf("[[listener]]\naddress = \"tcp:%s\"\npolicy = \"clients\"\n", gw.TCP)
	if strings.Contains(policyTOML, "users") || strings.Contains(policyTOML, "groups") {
		tcpListener, gw.TCP = "", ""
	}
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "20s"

[server]
read_timeout = "10s"
shutdown_grace = "2s"
log_level = "debug"

[[listener]]
address = "unix:%s"
policy = "clients"
mode = "0666"

%s
[policy.clients]
%s
`, c.Socket, gw.Unix, tcpListener, policyTOML)
	cfg := mustParse(t, src)
	testenv.StartGateway(t, cfg)
	return gw
}

// needProgram finds a client program or fails naming its package.
func needProgram(t *testing.T, pkg string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if filepath.IsAbs(c) {
			if fi, err := os.Stat(c); err == nil && fi.Mode()&0o111 != 0 {
				return c
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: apt-get install %s", candidates[0], pkg)
	return ""
}

// runResult is what a client program did.
type runResult struct {
	Stdout, Stderr string
	Code           int
}

func (r runResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout ---\n%s--- stderr ---\n%s", r.Code, r.Stdout, r.Stderr)
}

// runOpts say how to run a client: asUID >= 0 runs it as that uid and
// asGID through setpriv, with no supplementary groups unless groups are
// given; asSelf runs it as the test itself.
type runOpts struct {
	asUID, asGID int
	groups       []int
	stdin        []byte
}

// runClient runs a client program to completion, at most clientTimeout.
func runClient(t *testing.T, o runOpts, name string, args ...string) runResult {
	t.Helper()
	argv := append([]string{name}, args...)
	if o.asUID >= 0 {
		setpriv := needProgram(t, "util-linux", "setpriv", "/usr/bin/setpriv")
		pre := []string{setpriv, "--reuid=" + strconv.Itoa(o.asUID), "--regid=" + strconv.Itoa(o.asGID)}
		if len(o.groups) == 0 {
			pre = append(pre, "--clear-groups")
		} else {
			gs := make([]string, len(o.groups))
			for i, g := range o.groups {
				gs[i] = strconv.Itoa(g)
			}
			pre = append(pre, "--groups="+strings.Join(gs, ","))
		}
		argv = append(pre, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/nonexistent"}
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if o.stdin != nil {
		cmd.Stdin = bytes.NewReader(o.stdin)
	}
	err := cmd.Run()
	shown := strings.Join(short(argv), " ")
	res := runResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s timed out after %v\n%s", shown, clientTimeout, res)
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", shown, err)
	}
	return res
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// short abbreviates inline scripts for messages.
func short(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if strings.Contains(a, "\n") || len(a) > 200 {
			a = "<script>"
		}
		out[i] = strconv.Quote(a)
	}
	return out
}

var asSelf = runOpts{asUID: -1, asGID: -1}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs clients under other uids")
	}
}

// ---------------------------------------------------------------------------
// clamdscan

// clamdscanConf writes a clamd.conf holding only what clamdscan needs to
// find its daemon.
func clamdscanConf(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	foundLine    = regexp.MustCompile(`(?m)^(.*): (\S+) FOUND$`)
	infectedLine = regexp.MustCompile(`(?m)^Infected files: (\d+)$`)
)

// foundLines returns clamdscan's "path: threat FOUND" lines, sorted.
func foundLines(out string) []string {
	lines := foundLine.FindAllString(out, -1)
	sort.Strings(lines)
	return lines
}

// wantFoundLines are the FOUND lines a scan of the whole tree must print.
func wantFoundLines(tr clientTree) []string {
	var lines []string
	for rel, threat := range wantFound {
		lines = append(lines, tr.path(rel)+": "+threat+" FOUND")
	}
	sort.Strings(lines)
	return lines
}

// TestClientClamdscan runs ClamAV's own clamdscan against the gateway in
// each of its modes, and the same command against clamd directly: exit
// codes and FOUND lines must be what clamd gives, naming the real paths.
func TestClientClamdscan(t *testing.T) {
	t.Parallel()
	clamdscan := needProgram(t, "clamdscan", "clamdscan", "/usr/bin/clamdscan")
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	tr := makeClientTree(t)
	gw := startClientGateway(t, clamd, fmt.Sprintf("roots = [%q]", tr.Root))
	confDir := testenv.TempDir(t)
	_, gwPort, _ := net.SplitHostPort(gw.TCP)
	confs := map[string]string{
		"gateway-unix": clamdscanConf(t, confDir, "gw-unix.conf", "LocalSocket "+gw.Unix),
		"gateway-tcp":  clamdscanConf(t, confDir, "gw-tcp.conf", "TCPSocket "+gwPort, "TCPAddr 127.0.0.1"),
		"clamd":        clamdscanConf(t, confDir, "clamd.conf", "LocalSocket "+clamd.Socket),
	}
	scan := func(t *testing.T, conf string, args ...string) runResult {
		t.Helper()
		return runClient(t, asSelf, clamdscan, append([]string{"--config-file=" + confs[conf]}, args...)...)
	}

	modes := []struct {
		name string
		args []string
	}{
		{"default", nil},                                          // zCONTSCAN of each path named
		{"fdpass", []string{"--fdpass"}},                          // walks itself: zFILDES per file, one connection each
		{"stream", []string{"--stream"}},                          // walks itself: zINSTREAM per file
		{"multiscan", []string{"--multiscan"}},                    // zMULTISCAN of each path named
		{"multiscan-fdpass", []string{"--multiscan", "--fdpass"}}, // zIDSESSION with pipelined zFILDES
	}
	for _, m := range modes {
		t.Run(m.name+"/infected-tree", func(t *testing.T) {
			got := scan(t, "gateway-unix", append(m.args, tr.Root)...)
			want := wantFoundLines(tr)
			if got.Code != 1 || !slices.Equal(foundLines(got.Stdout), want) {
				t.Errorf("clamdscan %v %s: want exit 1 and FOUND lines\n%s\ngot %s", m.args, tr.Root, strings.Join(want, "\n"), got)
			}
			if m := infectedLine.FindStringSubmatch(got.Stdout); m == nil || m[1] != strconv.Itoa(len(want)) {
				t.Errorf("summary does not count %d infected files:\n%s", len(want), got)
			}
			if strings.Contains(got.Stdout+got.Stderr, "ERROR") {
				t.Errorf("unexpected ERROR in output:\n%s", got)
			}
			direct := scan(t, "clamd", append(m.args, tr.Root)...)
			if direct.Code != got.Code || !slices.Equal(foundLines(direct.Stdout), foundLines(got.Stdout)) {
				t.Errorf("gateway and clamd differ\ngateway: %s\nclamd: %s", got, direct)
			}
		})
		t.Run(m.name+"/clean-tree", func(t *testing.T) {
			got := scan(t, "gateway-unix", append(m.args, tr.path("cleandir"), tr.path("clean.txt"))...)
			if got.Code != 0 || len(foundLines(got.Stdout)) != 0 || !strings.Contains(got.Stdout, "Infected files: 0") {
				t.Errorf("clean scan: want exit 0, no FOUND\n%s", got)
			}
		})
		t.Run(m.name+"/single-file", func(t *testing.T) {
			got := scan(t, "gateway-unix", append(m.args, tr.path("with space/eicar file.com"))...)
			want := []string{tr.path("with space/eicar file.com") + ": " + testenv.EicarThreat + " FOUND"}
			if got.Code != 1 || !slices.Equal(foundLines(got.Stdout), want) {
				t.Errorf("want exit 1 and %q\n%s", want, got)
			}
		})
	}

	t.Run("stream-over-tcp", func(t *testing.T) {
		got := scan(t, "gateway-tcp", "--stream", tr.Root)
		want := wantFoundLines(tr)
		if got.Code != 1 || !slices.Equal(foundLines(got.Stdout), want) {
			t.Errorf("want exit 1 and\n%s\ngot %s", strings.Join(want, "\n"), got)
		}
		clean := scan(t, "gateway-tcp", "--stream", tr.path("cleandir"))
		if clean.Code != 0 || len(foundLines(clean.Stdout)) != 0 {
			t.Errorf("clean over tcp: want exit 0\n%s", clean)
		}
	})

	t.Run("stdin-stream", func(t *testing.T) {
		o := asSelf
		o.stdin = []byte(testenv.EICAR)
		got := runClient(t, o, clamdscan, "--config-file="+confs["gateway-unix"], "-")
		if got.Code != 1 || !strings.Contains(got.Stdout, "stream: "+testenv.EicarThreat+" FOUND") {
			t.Errorf("clamdscan - < eicar: want exit 1 and stream FOUND\n%s", got)
		}
	})

	t.Run("ping", func(t *testing.T) {
		got := scan(t, "gateway-unix", "--ping", "1")
		if got.Code != 0 {
			t.Errorf("clamdscan --ping: want exit 0\n%s", got)
		}
	})

	// A path outside the policy's roots is refused in path mode; the
	// refusal must read as an error to clamdscan, never as clean.
	t.Run("outside-root", func(t *testing.T) {
		outside := testenv.TempDir(t)
		noErr(t, os.WriteFile(filepath.Join(outside, "x.com"), []byte(testenv.EICAR), 0o644))
		for _, args := range [][]string{{outside}, {"--multiscan", outside}, {filepath.Join(outside, "x.com")}} {
			got := scan(t, "gateway-unix", args...)
			if got.Code != 2 || !strings.Contains(got.Stdout+got.Stderr, "Access denied") || strings.Contains(got.Stdout, ": OK") {
				t.Errorf("clamdscan %v outside the roots: want exit 2 and Access denied\n%s", args, got)
			}
		}
		// With --stream clamdscan reads the file itself: no path policy applies.
		got := scan(t, "gateway-unix", "--stream", outside)
		if got.Code != 1 || !strings.Contains(got.Stdout, filepath.Join(outside, "x.com")+": "+testenv.EicarThreat+" FOUND") {
			t.Errorf("clamdscan --stream outside the roots: want exit 1 and FOUND\n%s", got)
		}
	})
}

// ---------------------------------------------------------------------------
// python3-pyclamd

const pyclamdScript = `
import json, sys
import pyclamd
mode, addr, root, outside = sys.argv[1:5]
if mode == "unix":
    c = pyclamd.ClamdUnixSocket(addr, timeout=20)
else:
    host, port = addr.rsplit(":", 1)
    c = pyclamd.ClamdNetworkSocket(host, int(port), timeout=20)
r = {}
def t(name, f):
    try:
        r[name] = {"value": f()}
    except Exception as e:
        r[name] = {"error": type(e).__name__ + ": " + str(e)}
t("ping", c.ping)
t("version", c.version)
t("stream_eicar", lambda: c.scan_stream(c.EICAR()))
t("stream_eicar_bytes", lambda: c.scan_stream(sys.argv[5].encode()))
t("stream_clean", lambda: c.scan_stream(b"nothing to see here\n" * 1000))
t("scan_file_eicar", lambda: c.scan_file(root + "/eicar.com"))
t("scan_file_clean", lambda: c.scan_file(root + "/clean.txt"))
t("scan_file_clamexe", lambda: c.scan_file(root + "/sub/clam.exe"))
t("contscan_root", lambda: c.contscan_file(root))
t("contscan_clean", lambda: c.contscan_file(root + "/cleandir"))
t("multiscan_root", lambda: c.multiscan_file(root))
t("scan_file_outside", lambda: c.scan_file(outside))
print(json.dumps(r, sort_keys=True))
`

// pyResult is one pyclamd call: its return value or the exception.
type pyResult struct {
	Value json.RawMessage `json:"value"`
	Error string          `json:"error"`
}

func pythonWithPyclamd(t *testing.T) string {
	t.Helper()
	// pyclamd is a Debian package: it is importable by Debian's python3,
	// which another python3 earlier in PATH (pyenv, venv) may not be.
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		p, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import pyclamd").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 can import pyclamd: apt-get install python3-pyclamd")
	return ""
}

func runPyclamd(t *testing.T, py, mode, addr string, tr clientTree, outside string) map[string]pyResult {
	t.Helper()
	res := runClient(t, asSelf, py, "-c", pyclamdScript, mode, addr, tr.Root, outside, testenv.EICAR)
	var out map[string]pyResult
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &out) != nil {
		t.Fatalf("pyclamd script against %s %s failed:\n%s", mode, addr, res)
	}
	t.Logf("pyclamd via %s %s: %s", mode, addr, res.Stdout)
	return out
}

// TestClientPyclamd drives python3-pyclamd through the gateway's unix and
// TCP listeners, and compares every answer with clamd's own.
func TestClientPyclamd(t *testing.T) {
	t.Parallel()
	py := pythonWithPyclamd(t)
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	tr := makeClientTree(t)
	outside := testenv.TempDir(t)
	noErr(t, os.WriteFile(filepath.Join(outside, "x.com"), []byte(testenv.EICAR), 0o644))
	gw := startClientGateway(t, clamd, fmt.Sprintf("roots = [%q]", tr.Root))

	direct := runPyclamd(t, py, "unix", clamd.Socket, tr, filepath.Join(outside, "x.com"))
	found := func(path, threat string) string {
		return fmt.Sprintf(`{%q:["FOUND",%q]}`, path, threat)
	}
	for _, via := range []struct{ mode, addr string }{{"unix", gw.Unix}, {"tcp", gw.TCP}} {
		t.Run(via.mode, func(t *testing.T) {
			got := runPyclamd(t, py, via.mode, via.addr, tr, filepath.Join(outside, "x.com"))
			want := map[string]string{
				"ping":               "true",
				"stream_eicar":       found("stream", testenv.EicarThreat),
				"stream_eicar_bytes": found("stream", testenv.EicarThreat),
				"stream_clean":       "null",
				"scan_file_eicar":    found(tr.path("eicar.com"), testenv.EicarThreat),
				"scan_file_clean":    "null",
				"scan_file_clamexe":  found(tr.path("sub/clam.exe"), clamExeThreat),
				"contscan_clean":     "null",
			}
			for name, w := range want {
				if g := got[name]; g.Error != "" || !jsonEqual(g.Value, w) {
					t.Errorf("%s: got value %s error %q, want %s", name, g.Value, g.Error, w)
				}
			}
			for _, name := range []string{"contscan_root", "multiscan_root"} {
				var m map[string][]string
				if err := json.Unmarshal(got[name].Value, &m); err != nil || got[name].Error != "" {
					t.Errorf("%s: %s %s", name, got[name].Value, got[name].Error)
					continue
				}
				if len(m) != len(wantFound) {
					t.Errorf("%s: %d results, want %d: %v", name, len(m), len(wantFound), m)
				}
				for rel, threat := range wantFound {
					if r := m[tr.path(rel)]; len(r) != 2 || r[0] != "FOUND" || r[1] != threat {
						t.Errorf("%s: %s: got %v, want FOUND %s", name, rel, r, threat)
					}
				}
			}
			if v := got["version"]; v.Error != "" || !strings.Contains(string(v.Value), "ClamAV ") {
				t.Errorf("version: %s %s", v.Value, v.Error)
			}
			// Path outside the roots: pyclamd reports the gateway's refusal
			// as an ERROR for the file, not as clean.
			var outsideRes map[string][]string
			_ = json.Unmarshal(got["scan_file_outside"].Value, &outsideRes)
			if r := outsideRes[filepath.Join(outside, "x.com")]; len(r) != 2 || r[0] != "ERROR" || !strings.Contains(r[1], "Access denied") {
				t.Errorf("scan_file outside the roots: got %s %s, want ERROR Access denied", got["scan_file_outside"].Value, got["scan_file_outside"].Error)
			}
			// Everything else is what clamd itself answers.
			for name, d := range direct {
				if name == "scan_file_outside" {
					continue
				}
				if g := got[name]; g.Error != d.Error || !jsonEqual(g.Value, string(d.Value)) {
					t.Errorf("%s: gateway %s %q, clamd %s %q", name, g.Value, g.Error, d.Value, d.Error)
				}
			}
		})
	}
}

func jsonEqual(a json.RawMessage, b string) bool {
	if len(a) == 0 {
		a = json.RawMessage("null")
	}
	if b == "" {
		b = "null"
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// ---------------------------------------------------------------------------
// Perl ClamAV::Client

const perlClientScript = `
use strict; use warnings;
use ClamAV::Client; use JSON::PP;
my ($mode, $addr, $root) = @ARGV;
my $c;
if ($mode eq 'unix') {
    $c = ClamAV::Client->new(socket_name => $addr);
} else {
    my ($h, $p) = split /:/, $addr;
    $c = ClamAV::Client->new(socket_host => $h, socket_port => $p);
}
my %r;
sub t {
    my ($name, $code) = @_;
    my $v = eval { $code->() };
    if (my $e = $@) {
        $e = ref $e && $e->can('text') ? $e->text : "$e";
        $e =~ s/ at \S+ line \d+\.?\n?\z//;
        $r{$name} = { error => $e };
    } else {
        $r{$name} = { value => $v };
    }
}
t('ping', sub { $c->ping });
t('version', sub { $c->version });
t('scan_path_eicar', sub { [ $c->scan_path("$root/eicar.com") ] });
t('scan_path_clean', sub { [ $c->scan_path("$root/clean.txt") ] });
t('scan_path_cleandir', sub { [ $c->scan_path("$root/cleandir") ] });
t('scan_path_complete', sub { my %h = $c->scan_path_complete($root); \%h });
t('scan_stream', sub { open(my $fh, '<', "$root/eicar.com") or die "open: $!"; $c->scan_stream($fh) });
print JSON::PP->new->canonical->encode(\%r), "\n";
`

// TestClientPerlClamAVClient drives Perl's ClamAV::Client through the
// gateway. Its scan_stream speaks the STREAM command that clamd dropped in
// 0.97; the gateway must refuse it exactly as clamd does (an error thrown
// by the client, never a clean verdict).
func TestClientPerlClamAVClient(t *testing.T) {
	t.Parallel()
	perl := needProgram(t, "perl", "perl", "/usr/bin/perl")
	if exec.Command(perl, "-MClamAV::Client", "-e", "1").Run() != nil {
		t.Fatal("perl cannot load ClamAV::Client: apt-get install libclamav-client-perl")
	}
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	tr := makeClientTree(t)
	gw := startClientGateway(t, clamd, fmt.Sprintf("roots = [%q]", tr.Root))

	run := func(t *testing.T, mode, addr string) map[string]pyResult {
		t.Helper()
		res := runClient(t, asSelf, perl, "-e", perlClientScript, mode, addr, tr.Root)
		var out map[string]pyResult
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &out) != nil {
			t.Fatalf("perl ClamAV::Client against %s %s failed:\n%s", mode, addr, res)
		}
		t.Logf("ClamAV::Client via %s %s: %s", mode, addr, res.Stdout)
		return out
	}
	direct := run(t, "unix", clamd.Socket)
	for _, via := range []struct{ mode, addr string }{{"unix", gw.Unix}, {"tcp", gw.TCP}} {
		t.Run(via.mode, func(t *testing.T) {
			got := run(t, via.mode, via.addr)
			var completeWant []string
			for rel, threat := range wantFound {
				completeWant = append(completeWant, fmt.Sprintf("%q:%q", tr.path(rel), threat))
			}
			want := map[string]string{
				"ping":               `"PONG"`,
				"scan_path_eicar":    fmt.Sprintf(`[%q,%q]`, tr.path("eicar.com"), testenv.EicarThreat),
				"scan_path_clean":    fmt.Sprintf(`[%q,null]`, tr.path("clean.txt")),
				"scan_path_cleandir": fmt.Sprintf(`[%q,null]`, tr.path("cleandir")),
				"scan_path_complete": "{" + strings.Join(completeWant, ",") + "}",
			}
			for name, w := range want {
				if g := got[name]; g.Error != "" || !jsonEqual(g.Value, w) {
					t.Errorf("%s: got value %s error %q, want %s", name, g.Value, g.Error, w)
				}
			}
			if v := got["version"]; v.Error != "" || !strings.Contains(string(v.Value), "ClamAV ") {
				t.Errorf("version: %s %s", v.Value, v.Error)
			}
			if s := got["scan_stream"]; s.Error == "" || !strings.Contains(s.Error, "UNKNOWN COMMAND") {
				t.Errorf("scan_stream (legacy STREAM): want the client to throw on UNKNOWN COMMAND, got value %s error %q", s.Value, s.Error)
			}
			for name, d := range direct {
				if g := got[name]; g.Error != d.Error || !jsonEqual(g.Value, string(d.Value)) {
					t.Errorf("%s: gateway %s %q, clamd %s %q", name, g.Value, g.Error, d.Value, d.Error)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Peer permissions with real processes under other uids

const rawClientScript = `
import json, socket, sys
path, request = sys.argv[1], bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(path)
s.sendall(request)
buf = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    buf += b
print(json.dumps(buf.decode("latin-1")))
`

// TestClientPeerPermissions connects to a unix listener whose policy names
// users and groups, from processes running as allowed and refused uids.
// The socket is 0666, so the kernel lets every process connect: only the
// gateway's check of SO_PEERCRED (and /proc supplementary groups) decides.
func TestClientPeerPermissions(t *testing.T) {
	t.Parallel()
	needRoot(t)
	py := needProgram(t, "python3", "/usr/bin/python3", "python3")
	clamdscan := needProgram(t, "clamdscan", "clamdscan", "/usr/bin/clamdscan")
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	tr := makeClientTree(t)
	// Numeric ids need no passwd entry, so the test does not depend on
	// which accounts the machine has.
	const allowedUID, allowedGID, otherUID, otherGID = 4242, 4242, 4444, 4444
	const allowedGroup = 4343
	gw := startClientGateway(t, clamd, fmt.Sprintf(`roots = [%q]
users = ["%d"]
groups = ["%d"]`, tr.Root, allowedUID, allowedGroup))
	if fi, err := os.Stat(gw.Unix); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("gateway socket mode: %v %v", fi.Mode(), err)
	}
	conf := clamdscanConf(t, testenv.TempDir(t), "clamd.conf", "LocalSocket "+gw.Unix)

	ask := func(t *testing.T, o runOpts, request string) string {
		t.Helper()
		res := runClient(t, o, py, "-c", rawClientScript, gw.Unix, hex.EncodeToString([]byte(request)))
		var reply string
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &reply) != nil {
			t.Fatalf("raw client as uid %d: %s", o.asUID, res)
		}
		return reply
	}
	denied := func(uid, gid int) string {
		return fmt.Sprintf(`Access denied (uid %d, gid %d not allowed by client policy "clients"). ERROR`, uid, gid)
	}
	cases := []struct {
		name string
		o    runOpts
		ok   bool
	}{
		{"allowed-uid", runOpts{asUID: allowedUID, asGID: allowedGID}, true},
		{"allowed-primary-group", runOpts{asUID: otherUID, asGID: allowedGroup}, true},
		{"allowed-supplementary-group", runOpts{asUID: otherUID, asGID: otherGID, groups: []int{12, allowedGroup}}, true},
		{"other-uid", runOpts{asUID: otherUID, asGID: otherGID}, false},
		{"other-uid-other-groups", runOpts{asUID: otherUID, asGID: otherGID, groups: []int{12, 13}}, false},
		{"nobody", runOpts{asUID: 65534, asGID: 65534}, false},
		{"root", asSelf, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uid, gid := tc.o.asUID, tc.o.asGID
			if uid < 0 {
				uid, gid = os.Getuid(), os.Getgid()
			}
			for _, framing := range []struct{ req, term string }{{"zPING\x00", "\x00"}, {"nPING\n", "\n"}, {"PING\n", "\n"}} {
				want := "PONG" + framing.term
				if !tc.ok {
					want = denied(uid, gid) + framing.term
				}
				if got := ask(t, tc.o, framing.req); got != want {
					t.Errorf("%q as uid %d gid %d groups %v: got %q, want %q", framing.req, uid, gid, tc.o.groups, got, want)
				}
			}
			// A scan request is refused before it reaches clamd, whatever
			// the command.
			eicar := tr.path("eicar.com")
			got := ask(t, tc.o, "zSCAN "+eicar+"\x00")
			if tc.ok {
				if want := eicar + ": " + testenv.EicarThreat + " FOUND\x00"; got != want {
					t.Errorf("SCAN as allowed peer: got %q, want %q", got, want)
				}
			} else if want := denied(uid, gid) + "\x00"; got != want {
				t.Errorf("SCAN as refused peer: got %q, want %q", got, want)
			}
			// The real client in each of its modes. A refused peer must
			// get an error (exit 2), never a clean or partial verdict.
			// clamdscan prints only what follows the last colon of an
			// error reply, and the refusal has none, so it shows whole.
			for _, mode := range [][]string{nil, {"--stream"}, {"--fdpass"}, {"--multiscan", "--fdpass"}} {
				res := runClient(t, tc.o, clamdscan, append([]string{"--config-file=" + conf}, append(mode, tr.Root)...)...)
				if tc.ok {
					if res.Code != 1 || !slices.Equal(foundLines(res.Stdout), wantFoundLines(tr)) {
						t.Errorf("clamdscan %v as allowed peer: want exit 1 and every FOUND line\n%s", mode, res)
					}
				} else if res.Code != 2 || len(foundLines(res.Stdout)) != 0 || strings.Contains(res.Stdout, ": OK") ||
					!strings.Contains(res.Stdout+res.Stderr, "Access denied") {
					t.Errorf("clamdscan %v as refused peer: want exit 2, no verdict\n%s", mode, res)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// amavisd-new

// smtpSink is a minimal SMTP server standing in for the MTA that amavisd
// forwards clean mail to.
type smtpSink struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
	wg   sync.WaitGroup
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(clientTimeout))
	tp := textproto.NewConn(c)
	_ = tp.PrintfLine("220 sink.clamgate.test ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO", "HELO":
			_ = tp.PrintfLine("250 sink.clamgate.test")
		case "DATA":
			_ = tp.PrintfLine("354 go ahead")
			body, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, string(body))
			s.mu.Unlock()
			_ = tp.PrintfLine("250 2.0.0 queued as SINK1")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default:
			_ = tp.PrintfLine("250 ok")
		}
	}
}

func (s *smtpSink) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// amavisd is a real amavisd-new daemon run in the foreground for a test.
type amavisd struct {
	Home, TempBase, Log string
	Addr                string // its SMTP port
	cmd                 *exec.Cmd
	done                chan struct{}
}

// startAmavisd runs amavisd-new with a generated configuration whose only
// virus scanner is Debian's stock ClamAV-clamd entry (ask_daemon with
// "CONTSCAN {}\n"), pointed at the gateway socket. It runs as root only
// to start, then drops to the 'amavis' user as in production.
func startAmavisd(t *testing.T, gatewaySock, forwardAddr, extraConf string) *amavisd {
	t.Helper()
	bin := needProgram(t, "amavisd-new", "/usr/sbin/amavisd", "/usr/sbin/amavisd-new", "amavisd")
	u, err := user.Lookup("amavis")
	if err != nil {
		t.Fatal("no 'amavis' user (it comes with amavisd-new): apt-get install amavisd-new")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The configuration must not be writable by amavis (amavisd refuses
	// to start otherwise): it stays in a root-owned directory, beside
	// amavis's own home.
	confDir := testenv.TempDir(t)
	home := filepath.Join(confDir, "home")
	a := &amavisd{Home: home, TempBase: filepath.Join(home, "tmp"), Log: filepath.Join(home, "var", "amavis.log"), Addr: testenv.FreePort(t)}
	for _, d := range []string{home, a.TempBase, filepath.Join(home, "db"), filepath.Join(home, "var")} {
		noErr(t, os.MkdirAll(d, 0o750))
		noErr(t, os.Chown(d, uid, gid))
	}
	_, port, _ := net.SplitHostPort(a.Addr)
	conf := fmt.Sprintf(`use strict;
$myhostname = 'amavis.clamgate.test';
$mydomain = 'clamgate.test';
$daemon_user = 'amavis';
$daemon_group = 'amavis';
$MYHOME = '%[1]s';
$TEMPBASE = "$MYHOME/tmp";
$db_home = "$MYHOME/db";
$helpers_home = "$MYHOME/var";
$pid_file = "$MYHOME/var/amavisd.pid";
$lock_file = "$MYHOME/var/amavisd.lock";
$QUARANTINEDIR = undef;
$virus_quarantine_method = undef;
$inet_socket_bind = '127.0.0.1';
$inet_socket_port = %[2]s;
@inet_acl = qw(127.0.0.1);
$max_servers = 2;
$enable_db = 0;
$enable_zmq = 0;
$nanny_details_level = 0;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/var/amavis.log";
$log_level = 3;
$sa_debug = 0;
@local_domains_maps = (1);
@bypass_spam_checks_maps = (1);
@bypass_banned_checks_maps = (1);
@bypass_header_checks_maps = (1);
$enable_dkim_verification = 0;
$enable_dkim_signing = 0;
$final_virus_destiny = D_REJECT;
$final_banned_destiny = D_PASS;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
$forward_method = 'smtp:[127.0.0.1]:%[3]s';
$notify_method = $forward_method;
$virus_admin = undef;
$warnvirussender = 0;
$warnvirusrecip = 0;
@decoders = ();
@av_scanners = (
  ['ClamAV-clamd',
    \&ask_daemon, ["CONTSCAN {}\n", '%[4]s'],
    qr/\bOK$/m, qr/\bFOUND$/m,
    qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
@av_scanners_backup = ();
%[5]s
1;
`, home, port, portOf(forwardAddr), gatewaySock, extraConf)
	confPath := filepath.Join(confDir, "amavisd.conf")
	noErr(t, os.WriteFile(confPath, []byte(conf), 0o644))

	cmd := exec.Command(bin, "-c", confPath, "foreground")
	cmd.Dir = "/"
	out, err := os.Create(filepath.Join(confDir, "stdout.log"))
	noErr(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that it and its children can be stopped
	// together; killed with the test binary should that die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	a.cmd, a.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			a.dumpLogs(t)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", a.Addr, time.Second)
		if err == nil {
			c.Close()
			return a
		}
		select {
		case <-a.done:
			t.Fatalf("amavisd exited at start")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("amavisd did not listen on %s within 30s", a.Addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func (a *amavisd) stop() {
	pgid := a.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-a.done
	}
	// Children may outlive the parent briefly; they are in its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func (a *amavisd) dumpLogs(t *testing.T) {
	for _, p := range []string{filepath.Join(filepath.Dir(a.Home), "stdout.log"), a.Log} {
		b, _ := os.ReadFile(p)
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		t.Logf("--- %s ---\n%s", p, b)
	}
}

func (a *amavisd) logText() string {
	b, _ := os.ReadFile(a.Log)
	return string(b)
}

// waitLog waits until amavisd's log matches re (it writes after replying).
func (a *amavisd) waitLog(re *regexp.Regexp) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if re.MatchString(a.logText()) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// mailWith builds a MIME message with one base64 attachment.
func mailWith(id, attachment string) string {
	enc := base64Lines([]byte(attachment))
	return strings.ReplaceAll(fmt.Sprintf(`From: sender@example.test
To: rcpt@clamgate.test
Subject: clamgate amavis test %[1]s
Message-ID: <%[1]s@example.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b0undary"

--b0undary
Content-Type: text/plain

see attachment
--b0undary
Content-Type: application/octet-stream; name="file.com"
Content-Disposition: attachment; filename="file.com"
Content-Transfer-Encoding: base64

%[2]s
--b0undary--
`, id, enc), "\n", "\r\n")
}

func base64Lines(b []byte) string {
	enc := base64.StdEncoding.EncodeToString(b)
	var sb strings.Builder
	for len(enc) > 76 {
		sb.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	sb.WriteString(enc)
	return sb.String()
}

// sendMail submits msg over SMTP and returns the reply to the end of DATA
// (or to whichever command failed first).
func sendMail(t *testing.T, addr, msg string) (int, string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("smtp dial %s: %v", addr, err)
	}
	defer c.Close()
	fail := func(err error) (int, string) {
		var te *textproto.Error
		if errors.As(err, &te) {
			return te.Code, te.Msg
		}
		t.Fatalf("smtp to amavisd: %v", err)
		return 0, ""
	}
	if err := c.Hello("client.clamgate.test"); err != nil {
		return fail(err)
	}
	if err := c.Mail("sender@example.test"); err != nil {
		return fail(err)
	}
	if err := c.Rcpt("rcpt@clamgate.test"); err != nil {
		return fail(err)
	}
	w, err := c.Data()
	if err != nil {
		return fail(err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return fail(err)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	_ = c.Quit()
	return 250, "accepted"
}

// TestClientAmavisd runs the real amavisd-new daemon with Debian's stock
// ClamAV-clamd scanner entry pointed at the gateway, and sends it mail.
// The gateway's policy for amavis is the amavis user (by uid: amavisd drops
// its supplementary groups, so only uid or primary group can be relied on)
// and amavis's TEMPBASE as the only root.
func TestClientAmavisd(t *testing.T) {
	t.Parallel()
	needRoot(t)
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})

	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		sink := startSMTPSink(t)
		// amavisd's TEMPBASE is created by startAmavisd; the gateway socket
		// must be known before. Reserve the socket path, start amavisd,
		// then the gateway with amavis's TEMPBASE as root.
		sockDir := testenv.TempDir(t)
		sock := filepath.Join(sockDir, "gw.sock")
		am := startAmavisd(t, sock, sink.ln.Addr().String(), "")
		startAmavisGateway(t, clamd, sock, am.TempBase, `users = ["amavis"]`)

		code, reply := sendMail(t, am.Addr, mailWith("infected", testenv.EICAR))
		if code != 554 || !strings.Contains(reply, "INFECTED: "+testenv.EicarThreat) {
			t.Errorf("infected mail: got %d %q, want 554 ... INFECTED: %s", code, reply, testenv.EicarThreat)
		}
		if !am.waitLog(regexp.MustCompile(`Blocked INFECTED \(` + regexp.QuoteMeta(testenv.EicarThreat) + `\)`)) {
			t.Errorf("amavisd log has no 'Blocked INFECTED (%s)'", testenv.EicarThreat)
		}
		// It was amavis's stock ClamAV-clamd entry, asking for its parts
		// directory under TEMPBASE, that got the verdict from the gateway.
		if !regexp.MustCompile(`run_av \(ClamAV-clamd\): ` + regexp.QuoteMeta(am.TempBase) + `/amavis-\S+/parts INFECTED: ` + regexp.QuoteMeta(testenv.EicarThreat)).MatchString(am.logText()) {
			t.Errorf("amavisd log does not show ClamAV-clamd reporting the infection")
		}

		clam, err := os.ReadFile(clamExe)
		if err != nil {
			t.Fatalf("apt-get install clamav-testfiles: %v", err)
		}
		code, reply = sendMail(t, am.Addr, mailWith("clamexe", string(clam)))
		if code != 554 || !strings.Contains(reply, "INFECTED: "+clamExeThreat) {
			t.Errorf("mail with clam.exe: got %d %q, want 554 ... INFECTED: %s", code, reply, clamExeThreat)
		}

		code, reply = sendMail(t, am.Addr, mailWith("clean", "a perfectly clean attachment\n"))
		if code != 250 {
			t.Errorf("clean mail: got %d %q, want 250", code, reply)
		}
		if !am.waitLog(regexp.MustCompile(`Passed CLEAN`)) {
			t.Errorf("amavisd log has no 'Passed CLEAN'")
		}
		msgs := sink.messages()
		if len(msgs) != 1 || !strings.Contains(msgs[0], "clamgate amavis test clean") || !strings.Contains(msgs[0], "X-Virus-Scanned:") {
			t.Errorf("the MTA behind amavisd got %d messages, want the clean one with X-Virus-Scanned:\n%s", len(msgs), strings.Join(msgs, "\n----\n"))
		}
		if strings.Contains(am.logText(), "Access denied") {
			t.Errorf("amavisd was refused by the gateway")
		}
	})

	// A gateway that refuses amavis (a policy for another uid) answers
	// with an ERROR line that matches neither OK nor FOUND: amavis must
	// count its scanner as failed, never the mail as clean. What happens
	// next is amavis's own policy for unchecked mail: by default it passes
	// it tagged ***UNCHECKED***; with $final_unchecked_destiny = D_TEMPFAIL
	// the MTA is told to retry later.
	refused := []struct {
		name, conf string
		check      func(t *testing.T, code int, reply string, sink *smtpSink, am *amavisd)
	}{
		{"refused-default", "", func(t *testing.T, code int, reply string, sink *smtpSink, am *amavisd) {
			if code != 250 {
				t.Errorf("EICAR mail while the gateway refuses amavis (default unchecked destiny): got %d %q, want 250 (passed UNCHECKED)", code, reply)
			}
			if !am.waitLog(regexp.MustCompile(`Passed UNCHECKED`)) {
				t.Errorf("amavisd log has no 'Passed UNCHECKED'")
			}
			msgs := sink.messages()
			if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: ***UNCHECKED***") {
				t.Errorf("want one forwarded message tagged ***UNCHECKED***, got %d:\n%s", len(msgs), strings.Join(msgs, "\n----\n"))
			}
		}},
		{"refused-tempfail", "$final_unchecked_destiny = D_TEMPFAIL;", func(t *testing.T, code int, reply string, sink *smtpSink, am *amavisd) {
			if code/100 != 4 {
				t.Errorf("EICAR mail while the gateway refuses amavis (D_TEMPFAIL): got %d %q, want 4xx", code, reply)
			}
			if n := len(sink.messages()); n != 0 {
				t.Errorf("mail was forwarded (%d messages), want none", n)
			}
		}},
	}
	for _, rc := range refused {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			sink := startSMTPSink(t)
			sock := filepath.Join(testenv.TempDir(t), "gw.sock")
			am := startAmavisd(t, sock, sink.ln.Addr().String(), rc.conf)
			// The root is not amavis's tmp: a root another user owns
			// keeps the gateway from starting (startup's checkRoot).
			startAmavisGateway(t, clamd, sock, testenv.TempDir(t), `users = ["0"]`)

			code, reply := sendMail(t, am.Addr, mailWith(rc.name, testenv.EICAR))
			rc.check(t, code, reply, sink, am)
			if !am.waitLog(regexp.MustCompile(`ClamAV-clamd av-scanner FAILED: .*Access denied \(uid \d+, gid \d+ not allowed by client policy "amavis"\)\. ERROR`)) {
				t.Errorf("amavisd log does not show its ClamAV-clamd scanner failing on the gateway's refusal")
			}
			if !strings.Contains(am.logText(), "ALL VIRUS SCANNERS FAILED") {
				t.Errorf("amavisd log has no 'ALL VIRUS SCANNERS FAILED'")
			}
			if regexp.MustCompile(`Passed CLEAN|Blocked INFECTED`).MatchString(am.logText()) {
				t.Errorf("amavisd reached a verdict although the gateway refused it")
			}
		})
	}
}

// startAmavisGateway starts a gateway whose only listener is the socket
// amavisd is configured with: group amavis, mode 0660, as in production.
func startAmavisGateway(t *testing.T, c *testenv.Clamd, sock, root, peers string) {
	t.Helper()
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "20s"

[server]
read_timeout = "10s"
shutdown_grace = "2s"
log_level = "debug"

[[listener]]
address = "unix:%s"
policy = "amavis"
group = "amavis"
mode = "0660"

[policy.amavis]
roots = [%q]
allow_writable_root_ancestors = true   # amavis owns its home, as on Debian; deploy writes the same
commands = ["PING", "VERSION", "CONTSCAN", "SCAN", "MULTISCAN"]
%s
`, c.Socket, sock, root, peers)
	cfg := mustParse(t, src)
	testenv.StartGateway(t, cfg)
}
