package gateway_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// TestSocketActivation starts the gateway the way clamgate.socket does:
// systemd-socket-activate binds the ICAP port and passes it on. The gateway
// must serve the inherited socket (the hardened unit may not bind TCP
// itself) and say so.
func TestSocketActivation(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	bin := buildClamgate(t, dir)
	addr := testenv.FreePort(t)
	conf := filepath.Join(dir, "clamgate.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
[backend]
address = "unix:%s"
[[listener]]
address = "tcp:%s"
protocol = "icap"
policy = "proxy"
[policy.proxy]
`, c.Socket, addr)), 0o644)
	logPath := filepath.Join(dir, "log")
	logFile, _ := os.Create(logPath)
	cmd := exec.Command("systemd-socket-activate", "-l", addr, bin, "serve", "--config", conf)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("systemd-socket-activate: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	host, port, _ := net.SplitHostPort(addr)
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := exec.Command("c-icap-client", "-i", host, "-p", port, "-s", "avscan", "-v").CombinedOutput()
		if strings.Contains(string(out), "ICAP/1.0 200 OK") {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("no OPTIONS answer on the inherited socket:\n%s\n%s", out, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(logPath)
	if !strings.Contains(string(log), `msg="socket from systemd" address=tcp:`+addr) {
		t.Errorf("the gateway did not take the inherited socket:\n%s", log)
	}
}

// buildClamgate builds the clamgate command into dir, for tests that run
// it as its own process.
func buildClamgate(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "clamgate")
	if out, err := exec.Command("go", "build", "-o", bin, "clamgate/cmd/clamgate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
