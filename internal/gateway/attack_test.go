package gateway_test

// Attacks by unprivileged local users on the clamd-protocol front (issue
// 14): each runs as a process under another uid and must leave the
// gateway serving its authorised clients, with its descriptors and
// connections bounded.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// attackScript is the attacking client. Modes:
//
//	fds PATH N PREFIX MSG   PREFIX, then N messages MSG carrying 3 descriptors each (hex)
//	hold PATH N             N connections that send "z" and nothing more
//	trickle PATH HEX SECS   the bytes one at a time, SECS apart, until the gateway answers or closes
//
// fds and hold print "ready K" (K: what was sent or held) and keep
// everything open until stdin closes; trickle prints its result as JSON.
const attackScript = `
import json, os, socket, sys, time
mode, path = sys.argv[1], sys.argv[2]
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    return s
if mode == "fds":
    s = conn()
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]
    s.sendall(bytes.fromhex(sys.argv[4]))
    sent = 0
    for i in range(int(sys.argv[3])):
        try:
            socket.send_fds(s, [bytes.fromhex(sys.argv[5])], fds)
        except OSError:
            break
        sent += 1
    print("ready", sent, flush=True)
    sys.stdin.readline()
elif mode == "hold":
    held = []
    for i in range(int(sys.argv[3])):
        try:
            s = conn()
            s.send(b"z")
            held.append(s)
        except OSError:
            break
    print("ready", len(held), flush=True)
    sys.stdin.readline()
elif mode == "trickle":
    s = conn()
    data, gap = bytes.fromhex(sys.argv[3]), float(sys.argv[4])
    got, sent, closed = b"", 0, False
    for b in data:
        try:
            s.send(bytes([b]))
        except OSError:
            closed = True
            break
        sent += 1
        time.sleep(gap)
        s.setblocking(False)
        try:
            r = s.recv(4096)
            got += r
            if not r:
                closed = True
        except BlockingIOError:
            pass
        except OSError:
            closed = True
        s.setblocking(True)
        if got or closed:
            break
    print(json.dumps({"sent": sent, "of": len(data), "reply": got.decode("latin-1"), "closed": closed}))
`

// attacker is an attackScript process running as an unprivileged uid.
type attacker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startAttacker(t *testing.T, uid int, args ...string) *attacker {
	t.Helper()
	needRoot(t)
	py := needProgram(t, "python3", "/usr/bin/python3")
	cmd := exec.Command(py, append([]string{"-c", attackScript}, args...)...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	a := &attacker{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(a.stop)
	return a
}

// line is the attacker's next line of output.
func (a *attacker) line(t *testing.T) string {
	t.Helper()
	l, err := a.out.ReadString('\n')
	if err != nil {
		t.Fatalf("attacker: %v (output %q)", err, l)
	}
	return strings.TrimSpace(l)
}

func (a *attacker) stop() {
	a.stdin.Close()
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
}

// attackGateway serves policyTOML on one unix listener, with listenerTOML
// added to the listener and serverTOML to [server].
func attackGateway(t *testing.T, c *testenv.Clamd, serverTOML, listenerTOML, policyTOML string) string {
	t.Helper()
	sock := filepath.Join(testenv.TempDir(t), "gw.sock")
	listener := fmt.Sprintf("[[listener]]\naddress = \"unix:%s\"\npolicy = \"test\"\nmode = \"0666\"\n%s\n", sock, listenerTOML)
	testenv.StartGateway(t, mustParse(t, gatewaySource(c, serverTOML, listener, policyTOML)))
	return sock
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	must(t, err)
	return len(ents)
}

// pingWorks asks for PING as root, an authorised client of every policy here.
func pingWorks(t *testing.T, sock, while string) {
	t.Helper()
	if got := zask(t, sock, "PING"); got != "PONG\x00" {
		t.Errorf("PING %s: %q, want PONG", while, got)
	}
}

// TestAttackDescriptorFlood: descriptors attached to every byte of a
// command that never ends (outside and inside IDSESSION) are closed at
// once; the gateway holds at most one per connection. A session's command
// that comes with descriptors but is no FILDES ends the session with
// clamd's PROTOCOL ERROR, so that attacker may send fewer than all.
func TestAttackDescriptorFlood(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := attackGateway(t, clamd, "", "", "")
	for _, tc := range []struct {
		prefix, msg string
		n           int
		ends        bool // the gateway ends the session at the first message
	}{
		{"z", "A", 1500, false},                                        // a command that never ends
		{"zIDSESSION\x00zPING\x00z", "A", 1500, false},                 // the same inside a session
		{"zIDSESSION\x00", "zVERSION\x00", 300, true},                  // a session's commands, each with descriptors
		{"zIDSESSION\x00", "zINSTREAM\x00\x00\x00\x00\x00", 300, true}, // the same with streams
	} {
		t.Run(fmt.Sprintf("%q+%q", tc.prefix, tc.msg), func(t *testing.T) {
			before := openFDs(t)
			a := startAttacker(t, 4301, "fds", sock, strconv.Itoa(tc.n), hex.EncodeToString([]byte(tc.prefix)), hex.EncodeToString([]byte(tc.msg)))
			ready := a.line(t)
			// The attacker's messages may still be queued on the socket:
			// watch the gateway read them.
			held := 0
			for range 20 {
				held = max(held, openFDs(t)-before)
				time.Sleep(100 * time.Millisecond)
			}
			sent := (ready == "ready "+strconv.Itoa(tc.n)) || (tc.ends && strings.HasPrefix(ready, "ready "))
			if !sent || held > 20 {
				t.Errorf("attacker %q: the gateway holds %d more descriptors, want a handful", ready, held)
			}
			pingWorks(t, sock, "during a descriptor flood")
			a.stop()
		})
	}
}

// TestAttackOutsidersFillListener: peers the policy refuses cannot take
// the listener's connections from its authorised clients.
func TestAttackOutsidersFillListener(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := attackGateway(t, clamd, "", "max_connections = 8", `users = ["0"]`)
	a := startAttacker(t, 4302, "hold", sock, "50")
	t.Log(a.line(t))
	pingWorks(t, sock, "while an outsider holds connections")
}

// TestAttackOneUserFillsListener: one user of an open policy cannot take
// all of a listener's connections (max_connections_per_uid, by default
// half of max_connections).
func TestAttackOneUserFillsListener(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := attackGateway(t, clamd, "", "max_connections = 8", "")
	a := startAttacker(t, 4303, "hold", sock, "50")
	t.Log(a.line(t))
	pingWorks(t, sock, "while one user holds connections")
	// Past its own bound, a client is told why.
	for range 4 {
		c, err := net.Dial("unix", sock)
		must(t, err)
		defer c.Close()
	}
	if got := zask(t, sock, "PING"); got != "gateway busy: too many connections from uid 0. ERROR\n" {
		t.Errorf("fifth connection of uid 0: %q", got)
	}
}

// trickleResult is what attackScript's trickle mode reports.
type trickleResult struct {
	Sent, Of int
	Reply    string
	Closed   bool
}

func trickle(t *testing.T, sock string, data []byte) trickleResult {
	t.Helper()
	a := startAttacker(t, 4304, "trickle", sock, hex.EncodeToString(data), "0.25")
	var res trickleResult
	if l := a.line(t); json.Unmarshal([]byte(l), &res) != nil {
		t.Fatalf("attacker said %q", l)
	}
	return res
}

// TestAttackTrickle: a command or a stream sent a byte at a time, each
// byte in time for read_timeout, still ends at command_timeout or
// stream_timeout: progress does not extend them.
func TestAttackTrickle(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := attackGateway(t, clamd, "command_timeout = \"1s\"\nstream_timeout = \"2s\"", "", "")
	// 40 bytes a quarter of a second apart: 10 s, far past both bounds.
	cmdBytes := append([]byte("z"), bytes.Repeat([]byte("A"), 39)...)
	if res := trickle(t, sock, cmdBytes); res.Sent == res.Of || res.Reply != "COMMAND READ TIMED OUT\n" {
		t.Errorf("trickled command: %+v, want COMMAND READ TIMED OUT before the end", res)
	}
	stream := append([]byte("zINSTREAM\x00\x00\x00\x00\x40"), bytes.Repeat([]byte("B"), 30)...)
	if res := trickle(t, sock, stream); res.Sent == res.Of || res.Reply != "COMMAND READ TIMED OUT\n" {
		t.Errorf("trickled stream: %+v, want COMMAND READ TIMED OUT before the end", res)
	}
}

// TestSizeLimitReplyReadable: a stream over the limit gets its refusal
// every time, not a broken pipe or a reset, while the client still has
// data in flight (issue 13), over unix and TCP.
func TestSizeLimitReplyReadable(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	gwUnix, gwTCP := gatewayFor(t, clamd, `max_object = "1K"`)
	body := append([]byte("zINSTREAM\x00\x00\x10\x00\x00"), bytes.Repeat([]byte("x"), 1<<20)...)
	for _, ep := range []struct{ network, addr string }{{"unix", gwUnix}, {"tcp", gwTCP}} {
		failures := 0
		for range 20 {
			c, err := net.Dial(ep.network, ep.addr)
			must(t, err)
			_ = c.SetDeadline(time.Now().Add(15 * time.Second))
			// Like clamdjs and aioclamd, the client sends its whole stream
			// before it reads: a write error loses the reply for it.
			_, werr := c.Write(body)
			got, err := io.ReadAll(c)
			c.Close()
			if werr != nil || string(got) != "INSTREAM size limit exceeded. ERROR\x00" {
				failures++
				t.Logf("%s: write %v; got %q, %v", ep.network, werr, got, err)
			}
		}
		if failures > 0 {
			t.Errorf("%s: %d of 20 clients did not read the size-limit reply", ep.network, failures)
		}
	}
}
