package milter_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/config"
	"clamgate/internal/testenv"
)

// startMilter runs the gateway with one milter listener on a unix socket in
// front of backend ("unix:/path" of a clamd), with milterTOML as its [milter]
// section, and returns the socket's path.
func startMilter(t *testing.T, backend, milterTOML string) string {
	t.Helper()
	return startMilterPolicy(t, backend, "", milterTOML)
}

// startMilterPolicy is startMilter with policyTOML added to [policy.mta].
func startMilterPolicy(t *testing.T, backend, policyTOML, milterTOML string) string {
	t.Helper()
	sock := filepath.Join(testenv.TempDir(t), "milter.sock")
	src := fmt.Sprintf(`
[backend]
address = %q
timeout = "20s"
stream_max_length = "10M"

[[listener]]
address = "unix:%s"
protocol = "milter"
policy = "mta"
mode = "0666"

[policy.mta]
max_concurrent = 4
%s

[milter]
%s
`, backend, sock, policyTOML, milterTOML)
	cfg, err := config.Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, src)
	}
	testenv.StartGateway(t, cfg)
	return sock
}

// miltertest runs testdata/script with the given -D variables and fails the
// test with miltertest's output when the script fails.
func miltertest(t *testing.T, script string, vars map[string]string) {
	t.Helper()
	bin, err := exec.LookPath("miltertest")
	if err != nil {
		t.Fatal("miltertest is not installed: run scripts/install-deps.sh --test")
	}
	args := []string{"-s", filepath.Join("testdata", script)}
	for k, v := range vars {
		if v == "" {
			continue // unset in the script, as "-D k=" would not be
		}
		args = append(args, "-D", k+"="+v)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("miltertest %s %v: %v\n%s", script, vars, err, strings.TrimSpace(string(out)))
	}
}
