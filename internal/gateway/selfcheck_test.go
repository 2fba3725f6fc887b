package gateway_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// TestVersionCommandsAndSelfCheck: VERSIONCOMMANDS lists, per policy, the
// commands that client may use (admin, default, restricted), in clamd's
// order, SELFCHECK included where the gateway serves it; clamdscan's
// commands succeed exactly where they are listed. SELFCHECK is answered by
// the gateway, never by clamd 1.4 (which does not know it): DBUPTODATE,
// then RELOADING after the database changed (the gateway's own reload,
// after which the new signature is served), then DBUPTODATE again.
func TestVersionCommandsAndSelfCheck(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: []string{"SelfCheck 0"}})
	dir := testenv.TempDir(t)
	tr := makeTree(t)
	sock := func(p string) string { return filepath.Join(dir, p+".sock") }
	var listeners strings.Builder
	for _, p := range []string{"admin", "default", "restricted"} {
		fmt.Fprintf(&listeners, "[[listener]]\naddress = \"unix:%s\"\npolicy = %q\nmode = \"0666\"\n\n", sock(p), p)
	}
	g := testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
[database]
dir = "%s"
watch = false
reload = "frugal"
%s
[policy.admin]
admin = true
roots = [%q]
[policy.default]
roots = [%q]
[policy.restricted]
commands = ["PING", "INSTREAM", "VERSIONCOMMANDS"]
`, c.Socket, c.DBDir, listeners.String(), tr.Root, tr.Root)))

	clamdList := zask(t, c.Socket, "VERSIONCOMMANDS")
	version, _, ok := strings.Cut(strings.TrimSuffix(clamdList, "\x00"), "| COMMANDS: ")
	if !ok {
		t.Fatalf("clamd's VERSIONCOMMANDS: %q", clamdList)
	}
	lists := map[string]string{
		"admin":      strings.TrimSuffix(clamdList, "\x00") + " SELFCHECK",
		"default":    version + "| COMMANDS: SCAN PING CONTSCAN VERSIONCOMMANDS VERSION END MULTISCAN FILDES STATS IDSESSION INSTREAM DETSTATS ALLMATCHSCAN",
		"restricted": version + "| COMMANDS: PING VERSIONCOMMANDS INSTREAM",
	}
	for p, want := range lists {
		if got := zask(t, sock(p), "VERSIONCOMMANDS"); got != want+"\x00" {
			t.Errorf("%s: VERSIONCOMMANDS\n got %q\nwant %q", p, got, want)
		}
		if got := string(exchange(t, "unix", sock(p), raw("nVERSIONCOMMANDS\n"))); got != want+"\n" {
			t.Errorf("%s: nVERSIONCOMMANDS %q", p, got)
		}
	}

	// clamdscan's commands work exactly where they are listed.
	clamdscan := needProgram(t, "clamdscan", "clamdscan", "/usr/bin/clamdscan")
	for p, list := range lists {
		conf := clamdscanConf(t, dir, p+".conf", "LocalSocket "+sock(p))
		commands := " " + strings.SplitN(list, "| COMMANDS: ", 2)[1] + " "
		for _, tc := range []struct {
			command string
			args    []string
		}{
			{"CONTSCAN", []string{tr.path("eicar.com")}},
			{"INSTREAM", []string{"--stream", tr.path("eicar.com")}},
			{"FILDES", []string{"--fdpass", tr.path("eicar.com")}},
			{"RELOAD", []string{"--reload"}},
		} {
			res := runClient(t, asSelf, clamdscan, append([]string{"--config-file=" + conf}, tc.args...)...)
			listed := strings.Contains(commands, " "+tc.command+" ")
			worked := (tc.command == "RELOAD" && res.Code == 0) || (tc.command != "RELOAD" && res.Code == 1 && strings.Contains(res.Stdout, "FOUND"))
			if listed != worked {
				t.Errorf("%s: clamdscan %v (%s): listed %v, worked %v\n%s", p, tc.args, tc.command, listed, worked, res)
			}
		}
	}

	for _, p := range []string{"default", "restricted"} {
		want := fmt.Sprintf("Command SELFCHECK is not allowed for client %s (admin only). ERROR\x00", p)
		if got := zask(t, sock(p), "SELFCHECK"); got != want {
			t.Errorf("%s: SELFCHECK %q, want %q", p, got, want)
		}
	}
	waitReply(t, sock("admin"), "SELFCHECK", "DBUPTODATE\x00", 30*time.Second) // after the RELOAD above
	if got := zask(t, c.Socket, "SELFCHECK"); got != "UNKNOWN COMMAND\x00" {
		t.Errorf("clamd 1.4 knows SELFCHECK now (%q): the gateway's answer is no longer only its own", got)
	}
	marker := fmt.Sprintf("CLAMGATE-SELFCHECK-%d", time.Now().UnixNano())
	freshclamWrite(t, c.DBDir, "selfcheck.ndb", fmt.Sprintf("Clamgate.SelfCheck:0:*:%x\n", marker))
	if got := zask(t, sock("admin"), "SELFCHECK"); got != "RELOADING\x00" {
		t.Fatalf("SELFCHECK after a database change: %q, want RELOADING", got)
	}
	probe := filepath.Join(tr.Root, "selfcheck-probe.txt")
	must(t, os.WriteFile(probe, []byte("x "+marker+" y"), 0o644))
	waitReply(t, sock("admin"), "SCAN "+probe, probe+": Clamgate.SelfCheck.UNOFFICIAL FOUND\x00", 30*time.Second)
	if got := zask(t, sock("admin"), "SELFCHECK"); got != "DBUPTODATE\x00" {
		t.Errorf("SELFCHECK after the reload: %q, want DBUPTODATE", got)
	}
	if log := g.Log.String(); !strings.Contains(log, "SELFCHECK started a database reload") || !strings.Contains(log, "signature database (reload)") {
		t.Errorf("the gateway's log does not show its own reload")
	}
}

// waitReply asks line until the reply is want, or fails after d.
func waitReply(t *testing.T, addr, line, want string, d time.Duration) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = zask(t, addr, line); got == want {
			return
		}
	}
	t.Fatalf("%s: %q, want %q", line, got, want)
}
