package gateway_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

func zask(t *testing.T, addr, line string) string {
	t.Helper()
	return string(exchange(t, "unix", addr, raw("z"+line+"\x00")))
}

// TestPolicyRefusals checks that what a client may not do never reaches
// clamd and gets a clamd-style ERROR saying why.
func TestPolicyRefusals(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	tr := makeTree(t)
	outside := testenv.TempDir(t)
	must(t, os.WriteFile(outside+"/secret.com", []byte(testenv.EICAR), 0o644))
	must(t, os.MkdirAll(tr.path("links"), 0o755))
	must(t, os.Symlink(outside+"/secret.com", tr.path("links/out")))
	must(t, os.Symlink("../../../../../../../.."+outside+"/secret.com", tr.path("links/rel_out")))
	gw, _ := gatewayFor(t, clamd, fmt.Sprintf("roots = [%q]\nmax_object = \"1K\"", tr.Root))

	cases := []struct {
		name, request, want string
	}{
		{"shutdown", "SHUTDOWN", "Command SHUTDOWN is not allowed for client test (admin only). ERROR\x00"},
		{"reload", "RELOAD", "Command RELOAD is not allowed for client test (admin only). ERROR\x00"},
		{"detstatsclear", "DETSTATSCLEAR", "Command DETSTATSCLEAR is not allowed for client test (admin only). ERROR\x00"},
		{"shadow", "SCAN /etc/shadow", "/etc/shadow: Access denied (not under an allowed root of client test). ERROR\x00"},
		{"dotdot", "CONTSCAN " + tr.Root + "/../../etc/shadow", tr.Root + "/../../etc/shadow: Access denied (not under an allowed root of client test). ERROR\x00"},
		{"symlink out", "SCAN " + tr.path("links/out"), tr.path("links/out") + ": Access denied (symlink leads outside the allowed roots of client test). ERROR\x00"},
		{"relative symlink out", "SCAN " + tr.path("links/rel_out"), tr.path("links/rel_out") + ": Access denied (symlink leads outside the allowed roots of client test). ERROR\x00"},
		{"symlink out in a tree", "CONTSCAN " + tr.path("links"),
			tr.path("links/out") + ": Access denied (symlink leads outside the allowed roots of client test). ERROR\x00" +
				tr.path("links/rel_out") + ": Access denied (symlink leads outside the allowed roots of client test). ERROR\x00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := zask(t, gw, tc.request)
			if tc.name == "symlink out in a tree" {
				got = normalize([]byte(got), true)
				tc.want = normalize([]byte(tc.want), true)
			}
			if got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	if got := zask(t, clamd.Socket, "PING"); got != "PONG\x00" {
		t.Fatalf("clamd after refused SHUTDOWN: %q", got)
	}
	t.Run("oversize stream", func(t *testing.T) {
		got := exchange(t, "unix", gw, step{Data: instream("z", bytes.Repeat([]byte("a"), 600), bytes.Repeat([]byte("b"), 600))})
		if string(got) != "INSTREAM size limit exceeded. ERROR\x00" {
			t.Errorf("got %q", got)
		}
	})
}

// TestCommandList checks a policy that lists its own commands.
func TestCommandList(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	gw, _ := gatewayFor(t, clamd, `commands = ["PING", "INSTREAM"]`)
	if got := zask(t, gw, "PING"); got != "PONG\x00" {
		t.Errorf("PING: %q", got)
	}
	if got := zask(t, gw, "VERSION"); got != "Command VERSION is not allowed for client test. ERROR\x00" {
		t.Errorf("VERSION: %q", got)
	}
	if got := exchange(t, "unix", gw, step{Data: instream("z", []byte(testenv.EICAR))}); string(got) != "stream: "+testenv.EicarThreat+" FOUND\x00" {
		t.Errorf("INSTREAM: %q", got)
	}
}

// TestAdminPolicy: only an admin policy may reload the shared engine.
func TestAdminPolicy(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	gw, _ := gatewayFor(t, clamd, "admin = true")
	if got := zask(t, gw, "RELOAD"); got != "RELOADING\x00" {
		t.Errorf("RELOAD from admin: %q", got)
	}
	if got := zask(t, gw, "PING"); got != "PONG\x00" {
		t.Errorf("PING after reload: %q", got)
	}
	if got := zask(t, gw, "SHUTDOWN"); got != "" {
		t.Errorf("SHUTDOWN from admin: %q", got)
	}
	failedClosed(t, "scan after clamd shut down", exchange(t, "unix", gw, step{Data: instream("z", []byte("x"))}))
}

// TestMaxConcurrent: a client with max_concurrent = 1 gets its second scan
// started only when the first is done: the EICAR scan, instant on its own,
// is answered after the slow one.
func TestMaxConcurrent(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{SlowSignatures: slowSignatures, StreamMaxLength: "40M"})
	sock := filepath.Join(testenv.TempDir(t), "gw.sock")
	g := testenv.StartGateway(t, mustParse(t, gatewaySource(c, "", fmt.Sprintf("[[listener]]\naddress = \"unix:%s\"\npolicy = \"test\"\nmode = \"0666\"\n", sock),
		"max_concurrent = 1\nmax_object = \"10M\"")))
	slow := make(chan struct{})
	go func() {
		defer close(slow)
		exchange(t, "unix", sock, step{Data: instream("z", randomData(10<<20, 6))})
	}()
	waitScanning(t, c)
	got := exchange(t, "unix", sock, step{Data: instream("z", []byte(testenv.EICAR))})
	if string(got) != "stream: "+testenv.EicarThreat+" FOUND\x00" {
		t.Errorf("second scan: %q", got)
	}
	// The second scan waited for the first one's slot: its audit line says
	// how long it was queued (a scan run beside the first waits for none).
	// The log, not the order of the two replies, which race each other
	// once the slot is free.
	must(t, g.Log.WaitFor("verdict=infected", 5*time.Second))
	if !regexp.MustCompile(`object=stream verdict=infected [^\n]*queued=`).MatchString(g.Log.String()) {
		t.Fatalf("the second scan ran beside the first (no queued= on its audit line):\n%s", g.Log.String())
	}
	<-slow
}
