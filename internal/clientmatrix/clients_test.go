package clientmatrix_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// client is one column of the matrix.
type client struct {
	name    string // column header
	source  string // where applications get it, for the table's legend
	prepare func(t *testing.T)
	drive   func(t *testing.T, s server, files map[string]string) map[string]result
}

// allClients lists the columns in table order.
func allClients() []client {
	return []client{
		clamdscanClient(),
		scriptClient("pyclamd", "Debian python3-pyclamd", "unix", needPyclamd, pythonArgv),
		scriptClient("ClamAV::Client", "Debian libclamav-client-perl", "unix", needPerlClient, perlArgv),
		scriptClient("clamscan (unix)", "npm clamscan "+npmVersion("clamscan"), "unix", needNode, nodeArgv("clamscan.js")),
		scriptClient("clamscan (TCP)", "npm clamscan "+npmVersion("clamscan"), "tcp", needNode, nodeArgv("clamscan.js")),
		scriptClient("clamdjs (TCP)", "npm clamdjs "+npmVersion("clamdjs"), "tcp", needNode, nodeArgv("clamdjs.js")),
		goClamdClient(),
	}
}

// driverTimeout bounds a whole driver run (all its calls).
const driverTimeout = 3 * time.Minute

// scriptClient is a client driven by a script under testdata/drivers: it
// gets the plan's path as its last argument and prints its results.
func scriptClient(name, source, network string, need func(t *testing.T), argv func(t *testing.T) []string) client {
	return client{
		name: name, source: source, prepare: need,
		drive: func(t *testing.T, s server, files map[string]string) map[string]result {
			t.Helper()
			p := plan{Files: files, OpTimeout: opTimeout.Milliseconds()}
			if network == "unix" {
				p.Unix = s.unix
			} else {
				host, port, _ := net.SplitHostPort(s.tcp)
				p.Host = host
				p.Port, _ = strconv.Atoi(port)
			}
			args := append(argv(t), writeJSON(t, p))
			out := runDriver(t, name+" via "+s.name, args)
			return decodeResults(t, name+" via "+s.name, out)
		},
	}
}

// runDriver runs a driver to completion and returns its standard output.
func runDriver(t *testing.T, who string, argv []string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), driverTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(driverEnv(), nodeEnv()...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil || err != nil {
		t.Fatalf("%s: %v (timeout %v)\nstdout:\n%s\nstderr:\n%s", who, err, driverTimeout, stdout.Bytes(), stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", who, stderr.Bytes())
	}
	return stdout.Bytes()
}

func driverEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/nonexistent"}
}

func driverPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "drivers", name))
	must(t, err)
	return p
}

// Debian's python3 is the one that imports pyclamd; a python3 earlier in
// PATH (pyenv, venv) may not.
const debianPython = "/usr/bin/python3"

func needPyclamd(t *testing.T) {
	t.Helper()
	if exec.Command(debianPython, "-c", "import pyclamd").Run() != nil {
		t.Fatal("python3 cannot import pyclamd: apt-get install python3-pyclamd")
	}
}

func pythonArgv(t *testing.T) []string {
	return []string{debianPython, "-B", driverPath(t, "pyclamd_driver.py")}
}

func needPerlClient(t *testing.T) {
	t.Helper()
	if exec.Command("/usr/bin/perl", "-MClamAV::Client", "-MJSON::PP", "-e", "1").Run() != nil {
		t.Fatal("perl cannot load ClamAV::Client: apt-get install libclamav-client-perl")
	}
}

func perlArgv(t *testing.T) []string {
	return []string{"/usr/bin/perl", driverPath(t, "clamav_client.pl")}
}

// ---------------------------------------------------------------------------
// npm packages, installed from testdata/node's lock file into a cache
// directory once per lock file.

var nodeSetup struct {
	once    sync.Once
	modules string // node_modules directory
	skip    string // why the npm clients cannot run here
	err     error
}

// npmRegistryDown recognises npm's errors for a registry it cannot reach.
var npmRegistryDown = []string{"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENETUNREACH", "network"}

func installNodeModules() (modules, skip string, err error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", "", errors.New("node is not installed: Node.js 18 or newer and npm are needed for the npm clients")
	}
	lock, err := os.ReadFile(filepath.Join("testdata", "node", "package-lock.json"))
	if err != nil {
		return "", "", err
	}
	manifest, err := os.ReadFile(filepath.Join("testdata", "node", "package.json"))
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(append(append([]byte{}, lock...), manifest...))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "clamgate", "clientmatrix-node-"+hex.EncodeToString(sum[:6]))
	modules = filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, ".package-lock.json")); err == nil {
		return modules, "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	for name, b := range map[string][]byte{"package.json": manifest, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// npm ci installs exactly the locked versions, and no install scripts run.
	out, err := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", dir).CombinedOutput()
	if err != nil {
		if line := registryDownLine(out); line != "" {
			return "", "npm registry unreachable, npm clients not tested: " + line, nil
		}
		return "", "", errors.New("npm ci: " + err.Error() + "\n" + string(out))
	}
	return modules, "", nil
}

// registryDownLine is the line of npm's output that says the registry
// could not be reached, or "".
func registryDownLine(out []byte) string {
	for line := range strings.Lines(string(out)) {
		for _, s := range npmRegistryDown {
			if strings.Contains(line, s) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

func needNode(t *testing.T) {
	t.Helper()
	nodeSetup.once.Do(func() { nodeSetup.modules, nodeSetup.skip, nodeSetup.err = installNodeModules() })
	switch {
	case nodeSetup.err != nil:
		t.Fatal(nodeSetup.err)
	case nodeSetup.skip != "":
		t.Skip(nodeSetup.skip)
	}
}

func nodeEnv() []string {
	if nodeSetup.modules == "" {
		return nil
	}
	return []string{"NODE_PATH=" + nodeSetup.modules}
}

func nodeArgv(script string) func(t *testing.T) []string {
	return func(t *testing.T) []string { return []string{"node", driverPath(t, script)} }
}

// npmVersion is the version package-lock.json pins for an npm package.
func npmVersion(pkg string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "node", "package-lock.json"))
	if err != nil {
		return "?"
	}
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	if json.Unmarshal(b, &lock) != nil {
		return "?"
	}
	return lock.Packages["node_modules/"+pkg].Version
}
