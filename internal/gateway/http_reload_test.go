package gateway_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/gateway"
	"clamgate/internal/testenv"
)

// TestConfigReloadKeepsHTTP: a reload that changes neither an HTTP
// listener nor its policy keeps its keep-alive connections serving, as the
// socket fronts' are kept, while the new bearer tokens take effect on them
// at once, and the old ones stop; a listener whose policy changed has its
// idle connection closed. A policy that only tokens choose keeps its roots
// open past the reload's grace.
func TestConfigReloadKeepsHTTP(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	root := filepath.Join(dir, "root")
	must(t, os.Mkdir(root, 0o755))
	must(t, os.WriteFile(filepath.Join(root, "eicar.txt"), []byte(testenv.EICAR), 0o644))
	kept, changed := testenv.FreePort(t), testenv.FreePort(t)
	path := filepath.Join(dir, "clamgate.toml")
	conf := func(token, otherObject string) string {
		sum := sha256.Sum256([]byte(token))
		return fmt.Sprintf(`
[backend]
address = "unix:%s"
[server]
shutdown_grace = "1s"
read_timeout = "30s"
[[listener]]
address = "tcp:%s"
protocol = "http"
policy = "web"
[[listener]]
address = "tcp:%s"
protocol = "http"
policy = "other"
[policy.web]
[policy.other]
max_object = %q
[policy.files]
roots = [%q]
allow_writable_root_ancestors = true
tokens_sha256 = [%q]
`, c.Socket, kept, changed, otherObject, root, hex.EncodeToString(sum[:]))
	}
	must(t, os.WriteFile(path, []byte(conf("cg_old-token", "1M")), 0o644))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	g := testenv.StartGateway(t, cfg, gateway.ReloadOn(hup, func() (*config.Config, error) { return config.Load(path) }))
	a, b := dialHTTP(t, kept), dialHTTP(t, changed)
	scanFile := "/scanFile?path=" + filepath.Join(root, "eicar.txt")
	expectHTTP(t, a, "GET", "/v1/version", "", 200)
	expectHTTP(t, a, "GET", scanFile, "cg_old-token", 406)
	expectHTTP(t, b, "GET", "/v1/version", "", 200)

	must(t, os.WriteFile(path, []byte(conf("cg_new-token", "2M")), 0o644))
	hup <- syscall.SIGHUP
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(g.Log.String(), "configuration reloaded"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no reload")
		}
	}
	_ = b.c.SetDeadline(time.Now().Add(10 * time.Second))
	if !b.closed(t) {
		t.Error("the idle connection of the listener whose policy changed was not closed")
	}
	expectHTTP(t, a, "GET", scanFile, "cg_new-token", 406)
	expectHTTP(t, a, "GET", scanFile, "cg_old-token", 401)
	time.Sleep(1500 * time.Millisecond) // past the grace, when unused roots close
	expectHTTP(t, a, "GET", scanFile, "cg_new-token", 406)
	expectHTTP(t, a, "GET", "/v1/version", "", 200)
}

// dialHTTP opens a keep-alive HTTP/1.1 connection, driven by hand (a
// session) so that the test knows its requests share it.
func dialHTTP(t *testing.T, addr string) *session {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &session{c: c, r: bufio.NewReader(c)}
}

// expectHTTP sends one request on the connection and checks its status.
func expectHTTP(t *testing.T, s *session, method, target, token string, status int) {
	t.Helper()
	_ = s.c.SetDeadline(time.Now().Add(30 * time.Second))
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := fmt.Fprintf(s.c, "%s %s HTTP/1.1\r\nHost: gw\r\n%s\r\n", method, target, auth); err != nil {
		t.Fatalf("%s %s: the connection is gone: %v", method, target, err)
	}
	resp, err := http.ReadResponse(s.r, nil)
	if err != nil {
		t.Fatalf("%s %s: the connection is gone: %v", method, target, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d, want %d: %s", method, target, resp.StatusCode, status, body)
	}
}
