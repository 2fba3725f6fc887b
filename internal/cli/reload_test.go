package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// TestServeReloadsOnSIGHUP sends serve a real SIGHUP: with --config it
// re-reads the file (here: adds a listener); with flags only it says there
// is nothing to re-read and goes on serving.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	dir := testenv.TempDir(t)
	first, second := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	conf := filepath.Join(dir, "clamgate.toml")
	listener := "[[listener]]\naddress = \"unix:%s\"\npolicy = \"p\"\n"
	body := "[backend]\naddress = \"unix:/nonexistent/clamd.sock\"\n[policy.p]\n" + fmt.Sprintf(listener, first)
	must(t, os.WriteFile(conf, []byte(body), 0o644))
	for _, tc := range []struct {
		name string
		args []string
		want string
		up   string // a socket that must answer after the reload
	}{
		{"config", []string{"--config", conf}, "configuration reloaded", second},
		{"flags", []string{"--backend", "unix:/nonexistent/clamd.sock", "--listen", "unix:" + first},
			"no configuration file to re-read", first},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, stop := context.WithCancel(context.Background())
			var log testenv.LogBuffer
			done := make(chan int)
			go func() { done <- Main(ctx, append([]string{"serve"}, tc.args...), &log, &log) }()
			defer func() { stop(); <-done }()
			waitDial(t, first)
			must(t, os.WriteFile(conf, []byte(body+fmt.Sprintf(listener, second)), 0o644))
			must(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), tc.want); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no %q after SIGHUP:\n%s", tc.want, log.String())
				}
			}
			waitDial(t, tc.up)
			must(t, os.WriteFile(conf, []byte(body), 0o644))
		})
	}
}

func waitDial(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer: %v", path, err)
		}
	}
}
