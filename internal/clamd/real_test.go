package clamd_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestSilentCommandsRealClamd checks the client's list of commands clamd
// answers by closing (clamd.ClosesSilently) against a real clamd: each
// command is sent raw, and the list must say "silent" exactly for those
// answered with no byte at all. SHUTDOWN goes last: it ends clamd.
func TestSilentCommandsRealClamd(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	for _, cmd := range []string{"PING", "VERSION", "VERSIONCOMMANDS", "STATS", "RELOAD", "DETSTATS", "DETSTATSCLEAR", "BOGUS", "SHUTDOWN"} {
		raw := rawReply(t, c.Socket, cmd)
		if silent := len(raw) == 0; silent != clamd.ClosesSilently(cmd) {
			t.Errorf("%s: clamd answered %q; the client's list says silent=%v", cmd, raw, clamd.ClosesSilently(cmd))
		}
		if len(raw) > 0 && raw[len(raw)-1] != 0 {
			t.Errorf("%s: clamd's reply %q does not end in NUL", cmd, raw)
		}
		if cmd == "RELOAD" { // let the reload finish before the next command
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := clamd.WaitPing(ctx, c.Client("unix")); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
	}
}

func rawReply(t *testing.T, socket, cmd string) []byte {
	t.Helper()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := conn.Write([]byte("z" + cmd + "\x00")); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out
}
