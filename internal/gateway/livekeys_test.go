package gateway_test

import (
	"fmt"
	"net"
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

// liveConf is what TestReloadLiveKeys changes, one key a step.
type liveConf struct {
	listenerPolicy, mode, service, onLimits, commands, users, maxObject, timeout string
}

func (c liveConf) file(clamd, dir, icapAddr string) string {
	a := fmt.Sprintf("on_limits = %q\nmax_object = %q\n", c.onLimits, c.maxObject)
	if c.commands != "" {
		a += "commands = " + c.commands + "\n"
	}
	if c.users != "" {
		a += "users = " + c.users + "\n"
	}
	return fmt.Sprintf(`[backend]
address = "unix:%s"
timeout = %q
[[listener]]
address = "unix:%s/gw.sock"
policy = %q
mode = %q
[[listener]]
address = "tcp:%s"
protocol = "icap"
policy = "b"
[icap]
service = %q
[policy.a]
%s[policy.b]
`, clamd, c.timeout, dir, c.listenerPolicy, c.mode, icapAddr, c.service, a)
}

// TestReloadLiveKeys: for a live key of each kind config.Keys names (a
// dispatcher limit, a policy's permission, its users, its largest object,
// a listener's policy, a socket's rights, a front's setting), a reload of
// the changed file changes what a real clamd's clients get; a
// restart-only key is reported and keeps its running value.
func TestReloadLiveKeys(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.LimitsClamd})
	dir := testenv.TempDir(t)
	sock, icapAddr, path := filepath.Join(dir, "gw.sock"), testenv.FreePort(t), filepath.Join(dir, "clamgate.toml")
	conf := liveConf{listenerPolicy: "a", mode: "0666", service: "avscan", onLimits: "block", maxObject: "5M", timeout: "1m"}
	write := func() { must(t, os.WriteFile(path, []byte(conf.file(c.Socket, dir, icapAddr)), 0o644)) }
	write()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	g := testenv.StartGateway(t, cfg, gateway.ReloadOn(hup, func() (*config.Config, error) { return config.Load(path) }))
	overLimit := testenv.LimitObjects()[4] // past MaxFiles, EICAR hidden past it
	clamdReply := func(data []byte) string {
		return strings.TrimSuffix(string(exchange(t, "unix", sock, step{Data: data})), "\x00")
	}
	scan := func(data []byte) string { return clamdReply(instream("z", data)) }
	version := func() string { return clamdReply([]byte("zVERSION\x00")) }
	steps := []struct {
		key           string
		by            config.Applier
		change        func()
		before, after func(t *testing.T)
	}{
		{"policy.*.on_limits", config.ApplyDispatcher, func() { conf.onLimits = "pass" },
			func(t *testing.T) { wantPrefix(t, scan(overLimit.Data), "stream: Heuristics.Limits.Exceeded") },
			func(t *testing.T) { wantPrefix(t, scan(overLimit.Data), "stream: OK") }},
		{"policy.*.commands", config.ApplyRoute, func() { conf.commands = `["PING", "INSTREAM"]` },
			func(t *testing.T) { wantPrefix(t, version(), "ClamAV ") },
			func(t *testing.T) { wantPrefix(t, version(), "Command VERSION is not allowed") }},
		{"policy.*.max_object", config.ApplyRoute, func() { conf.maxObject = "1K" },
			func(t *testing.T) { wantPrefix(t, scan(make([]byte, 4<<10)), "stream: OK") },
			func(t *testing.T) { wantPrefix(t, scan(make([]byte, 4<<10)), "INSTREAM size limit exceeded") }},
		{"policy.*.users", config.ApplyRoute, func() { conf.users = `["nobody"]` },
			func(t *testing.T) { wantPrefix(t, clamdReply([]byte("zPING\x00")), "PONG") },
			func(t *testing.T) { wantNotPrefix(t, clamdReply([]byte("zPING\x00")), "PONG") }},
		{"listener.policy", config.ApplyRoute, func() { conf.listenerPolicy = "b" },
			func(t *testing.T) { wantNotPrefix(t, clamdReply([]byte("zPING\x00")), "PONG") },
			func(t *testing.T) { wantPrefix(t, version(), "ClamAV ") }},
		{"listener.mode", config.ApplySocket, func() { conf.mode = "0600" },
			func(t *testing.T) { wantMode(t, sock, 0o666) },
			func(t *testing.T) { wantMode(t, sock, 0o600) }},
		{"icap.service", config.ApplyFront, func() { conf.service = "virus" },
			func(t *testing.T) { wantPrefix(t, icapOptions(t, icapAddr, "avscan"), "ICAP/1.0 200") },
			func(t *testing.T) {
				wantPrefix(t, icapOptions(t, icapAddr, "avscan"), "ICAP/1.0 404")
				wantPrefix(t, icapOptions(t, icapAddr, "virus"), "ICAP/1.0 200")
			}},
		{"backend.timeout", "", func() { conf.timeout = "30s" }, func(*testing.T) {},
			func(t *testing.T) {
				if err := g.Log.WaitFor(`needs a restart: the running value stays until then" key=backend.timeout`, 5*time.Second); err != nil {
					t.Error(err)
				}
			}},
	}
	for i, s := range steps {
		t.Run(s.key, func(t *testing.T) {
			if k := keyOf(s.key); k.Live != s.by {
				t.Fatalf("config.Keys classes %s as %q, the test as %q", s.key, k.Live, s.by)
			}
			s.before(t)
			s.change()
			write()
			hup <- syscall.SIGHUP
			if err := waitCount(&g.Log, "configuration reloaded", i+1, 10*time.Second); err != nil {
				t.Fatalf("%v\n%s", err, g.Log.String())
			}
			s.after(t)
		})
	}
	// Users are looked up at each reload: one the host lacks refuses it.
	conf.users = `["cghcfg-no-such-user"]`
	write()
	hup <- syscall.SIGHUP
	if err := g.Log.WaitFor("reload refused", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if want := path + `:18: policy.a.users: unknown user \"cghcfg-no-such-user\"`; !strings.Contains(g.Log.String(), want) {
		t.Errorf("log lacks %s", want)
	}
}

func keyOf(path string) config.Key {
	for _, k := range config.Keys {
		if k.Path == path {
			return k
		}
	}
	return config.Key{Path: path, Live: "not in config.Keys"}
}

// waitCount waits until text appears n times in the log.
func waitCount(l *testenv.LogBuffer, text string, n int, limit time.Duration) error {
	for deadline := time.Now().Add(limit); strings.Count(l.String(), text) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%q logged %d times, want %d", text, strings.Count(l.String(), text), n)
		}
	}
	return nil
}

func wantPrefix(t *testing.T, got, want string) {
	t.Helper()
	if !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want %q...", got, want)
	}
}

func wantNotPrefix(t *testing.T, got, refused string) {
	t.Helper()
	if strings.HasPrefix(got, refused) {
		t.Errorf("got %q: not refused", got)
	}
}

func wantMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
		t.Errorf("%s: %v %v, want mode %04o", path, fi.Mode(), err, mode)
	}
}

// icapOptions asks an ICAP service for its OPTIONS and returns the reply.
func icapOptions(t *testing.T, addr, service string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = fmt.Fprintf(c, "OPTIONS icap://%s/%s ICAP/1.0\r\nHost: %s\r\nEncapsulated: null-body=0\r\n\r\n", addr, service, addr)
	must(t, err)
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	return string(buf[:n])
}
