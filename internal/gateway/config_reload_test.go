package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
	"clamgate/internal/gateway"
	"clamgate/internal/testenv"
)

// reloadConf is the configuration TestConfigReloadUnderLoad rewrites: the
// proxy's weight, the mail socket's mode, the third listener and the
// backend timeout (a key that needs a restart) change between versions.
func reloadConf(c *testenv.Clamd, dir, httpAddr string, proxyWeight int, mailMode, third, timeout string) string {
	return fmt.Sprintf(`
[backend]
address = "unix:%s"
max_jobs = 2
timeout = %q
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s/mail.sock"
policy = "mail"
mode = %q
[[listener]]
address = "unix:%s/proxy.sock"
policy = "proxy"
mode = "0666"
%s
[policy.mail]
[policy.proxy]
weight = %d
[policy.extra]
`, c.Socket, timeout, httpAddr, dir, mailMode, dir, third, proxyWeight)
}

// TestConfigReloadUnderLoad: clients scan without pause on two policies
// while SIGHUP reloads a file that reweights one, re-permissions a socket,
// adds a listener and removes another (with a session in progress on it);
// then a broken file is refused. No scan fails, the session's scan ends
// with its verdict, /metrics shows each step, and the broken file changes
// nothing.
func TestConfigReloadUnderLoad(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	httpAddr := testenv.FreePort(t)
	path := filepath.Join(dir, "clamgate.toml")
	listener := func(name, pol string) string {
		return fmt.Sprintf("[[listener]]\naddress = \"unix:%s/%s.sock\"\npolicy = %q\nmode = \"0666\"\n", dir, name, pol)
	}
	write := func(src string) { must(t, os.WriteFile(path, []byte(src), 0o644)) }
	write(reloadConf(c, dir, httpAddr, 1, "0666", listener("old", "extra"), "1m"))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	g := testenv.StartGateway(t, cfg, gateway.ReloadOn(hup, func() (*config.Config, error) { return config.Load(path) }))
	base := "http://" + httpAddr
	waitStatus(t, base+"/readyz", 200)

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	mail := startLoad(ctx, clientAt(t, dir, "mail"), 3)
	proxy := startLoad(ctx, clientAt(t, dir, "proxy"), 3)
	// A session on the removed listener is mid-stream during the reload;
	// one on the re-permissioned one spans it.
	removed := openSession(t, filepath.Join(dir, "old.sock"))
	removed.send(t, append([]byte("zINSTREAM\x00"), chunk([]byte(testenv.EICAR))...), false)
	kept := openSession(t, filepath.Join(dir, "mail.sock"))
	if got := kept.send(t, []byte("zPING\x00"), true); got != "1: PONG" {
		t.Errorf("session before the reload: %q", got)
	}
	time.Sleep(300 * time.Millisecond)

	write(reloadConf(c, dir, httpAddr, 5, "0660", listener("new", "extra"), "30s"))
	hup <- syscall.SIGHUP
	m := waitMetric(t, base, `clamgate_config_reloads_total{result="ok"} 1`)
	for _, want := range []string{`clamgate_client_weight{client="proxy"} 5`, "clamgate_config_last_reload_successful 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("after the reload /metrics lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "old.sock")); !os.IsNotExist(err) {
		t.Errorf("removed listener's socket still there: %v", err)
	}
	if got := removed.send(t, []byte{0, 0, 0, 0}, true); got != "1: stream: "+testenv.EicarThreat+" FOUND" {
		t.Errorf("session in progress on the removed listener got %q, want its verdict", got)
	}
	if !removed.closed(t) {
		t.Error("session on the removed listener not closed after its request")
	}
	if got := kept.send(t, instream("z", []byte("clean")), true); got != "2: stream: OK" {
		t.Errorf("session across the reload on a kept listener: %q", got)
	}
	if reply, err := clientAt(t, dir, "new").Instream(context.Background(), strings.NewReader(testenv.EICAR)); err != nil || !strings.Contains(reply, "FOUND") {
		t.Errorf("added listener: %q %v", reply, err)
	}
	if !strings.Contains(g.Log.String(), "listeners_repermissioned=[unix:"+dir+"/mail.sock]") {
		t.Error("the reload's summary does not name the re-permissioned listener")
	}
	if fi, err := os.Stat(filepath.Join(dir, "mail.sock")); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("mail socket not re-permissioned: %v %v", fi.Mode(), err)
	}
	if !strings.Contains(g.Log.String(), `needs a restart: the running value stays until then" key=backend.timeout`) {
		t.Error("no log line saying backend.timeout needs a restart")
	}

	write(strings.Replace(reloadConf(c, dir, httpAddr, 500, "0660", listener("new", "nosuch"), "30s"), "[policy.extra]\n", "", 1))
	hup <- syscall.SIGHUP
	m = waitMetric(t, base, `clamgate_config_reloads_total{result="refused"} 1`)
	for _, want := range []string{`clamgate_client_weight{client="proxy"} 5`, "clamgate_config_last_reload_successful 0",
		`clamgate_scans_total{client="extra",protocol="clamd",verdict="infected"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("after the refused reload /metrics lacks %q", want)
		}
	}
	for _, want := range []string{path + ":23: policy.proxy.weight: 500: must be 1..100", path + ":18: listener[2].policy: no [policy.nosuch] section", "reload refused"} {
		if !strings.Contains(g.Log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if reply, err := clientAt(t, dir, "new").Instream(context.Background(), strings.NewReader("clean")); err != nil || reply != "stream: OK" {
		t.Errorf("old configuration no longer serving after a refused reload: %q %v", reply, err)
	}
	time.Sleep(300 * time.Millisecond)
	stopLoad()
	for name, l := range map[string]*loadGen{"mail": mail, "proxy": proxy} {
		n, failed, slowest := l.wait()
		t.Logf("%s: %d scans during the reloads, %d failed, slowest %v", name, n, failed, slowest.Round(time.Millisecond))
		if failed > 0 || n == 0 {
			t.Errorf("%s: %d of %d scans failed", name, failed, n)
		}
	}
}

func clientAt(t *testing.T, dir, name string) *clamd.Client {
	t.Helper()
	c, err := clamd.New("unix:"+filepath.Join(dir, name+".sock"), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitMetric(t *testing.T, base, want string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m := get(t, base+"/metrics"); strings.Contains(m, want) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q", want)
		}
	}
}

// session is a clamd IDSESSION held open across reloads.
type session struct {
	c net.Conn
	r *bufio.Reader
}

func openSession(t *testing.T, sock string) *session {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, err = c.Write([]byte("zIDSESSION\x00"))
	must(t, err)
	return &session{c: c, r: bufio.NewReader(c)}
}

// send writes data, and returns the next reply when wait is set.
func (s *session) send(t *testing.T, data []byte, wait bool) string {
	t.Helper()
	_, err := s.c.Write(data)
	must(t, err)
	if !wait {
		return ""
	}
	reply, err := s.r.ReadString(0)
	if err != nil {
		t.Errorf("session: %v (got %q)", err, reply)
	}
	return strings.TrimSuffix(reply, "\x00")
}

// closed reports whether the gateway has closed the session.
func (s *session) closed(t *testing.T) bool {
	t.Helper()
	rest, err := io.ReadAll(s.r)
	if err != nil || len(rest) > 0 {
		t.Errorf("session: %q %v", rest, err)
	}
	return err == nil
}

// TestConfigReloadNewRules: when a listener's policy rules change, its
// idle session is closed (the client reconnects under the new rules) and
// new connections get them; a file that cannot be read is refused.
func TestConfigReloadNewRules(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	sock := filepath.Join(dir, "gw.sock")
	path := filepath.Join(dir, "clamgate.toml")
	conf := func(policy string) string {
		return fmt.Sprintf("[backend]\naddress = \"unix:%s\"\n[[listener]]\naddress = \"unix:%s\"\npolicy = \"p\"\nmode = \"0666\"\n[policy.p]\n%s\n",
			c.Socket, sock, policy)
	}
	must(t, os.WriteFile(path, []byte(conf("")), 0o644))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	g := testenv.StartGateway(t, cfg, gateway.ReloadOn(hup, func() (*config.Config, error) { return config.Load(path) }))
	s := openSession(t, sock)
	if got := s.send(t, []byte("zVERSION\x00"), true); !strings.HasPrefix(got, "1: ClamAV ") {
		t.Fatalf("VERSION before the reload: %q", got)
	}
	must(t, os.WriteFile(path, []byte(conf(`commands = ["PING", "INSTREAM", "IDSESSION", "END"]`)), 0o644))
	hup <- syscall.SIGHUP
	if !s.closed(t) {
		t.Error("idle session not closed when its policy changed")
	}
	if got := string(exchange(t, "unix", sock, raw("zVERSION\x00"))); !strings.Contains(got, "not allowed") {
		t.Errorf("VERSION after the reload: %q", got)
	}
	must(t, os.Remove(path))
	hup <- syscall.SIGHUP
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(g.Log.String(), "reload refused"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a missing file was not refused")
		}
	}
	if got := string(exchange(t, "unix", sock, raw("zPING\x00"))); got != "PONG\x00" {
		t.Errorf("PING after a refused reload: %q", got)
	}
}
