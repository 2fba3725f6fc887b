package milter_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/testenv"

	gomilter "github.com/d--j/go-milter"
)

// mta opens a milter session the way postfix does (go-milter's client is
// the MTA side of the same library) and sends the envelope and headers.
func mta(t *testing.T, sock string) *gomilter.ClientSession {
	t.Helper()
	s, err := gomilter.NewClient("unix", sock, gomilter.WithReadTimeout(20*time.Second)).Session(gomilter.NewMacroBag())
	if err != nil {
		t.Fatalf("milter session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// message sends one message on s and returns the milter's final action.
func message(s *gomilter.ClientSession, body string) (*gomilter.Action, error) {
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			return s.Conn("c.example.org", gomilter.FamilyInet, 2525, "192.0.2.7")
		},
		func() (*gomilter.Action, error) { return s.Helo("c.example.org") },
		func() (*gomilter.Action, error) { return s.Mail("<a@example.org>", "") },
		func() (*gomilter.Action, error) { return s.Rcpt("<b@example.net>", "") },
		s.DataStart,
		func() (*gomilter.Action, error) { return s.HeaderField("Subject", "hi", nil) },
		s.HeaderEnd,
	}
	for _, step := range steps {
		if act, err := step(); err != nil || act.Type != gomilter.ActionContinue {
			return act, err
		}
	}
	if act, err := s.BodyChunk([]byte(body)); err != nil || act.Type != gomilter.ActionContinue {
		return act, err
	}
	_, act, err := s.End()
	return act, err
}

func gatewayTOML(backend, sock, policy string) string {
	return fmt.Sprintf(`
[backend]
address = %q
[server]
shutdown_grace = "20s"
[[listener]]
address = "unix:%s"
protocol = "milter"
policy = "mta"
mode = "0666"
[policy.mta]
%s
`, backend, sock, policy)
}

func TestPeerRefused(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := filepath.Join(testenv.TempDir(t), "m.sock")
	cfg, err := config.Parse("t.toml", []byte(gatewayTOML("unix:"+clamd.Socket, sock, `users = ["nobody"]`)))
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartGateway(t, cfg)
	_, err = gomilter.NewClient("unix", sock, gomilter.WithReadTimeout(5*time.Second)).Session(gomilter.NewMacroBag())
	if err == nil {
		t.Fatal("a peer outside the policy's users got a milter session")
	}
}

// rawMTA speaks milter packets directly, so that the test knows exactly
// what the gateway has received when it starts draining.
type rawMTA struct {
	t *testing.T
	c net.Conn
}

func dialRaw(t *testing.T, sock string) *rawMTA {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	m := &rawMTA{t: t, c: c}
	m.send('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff")
	if code, _, err := m.reply(); err != nil || code != 'O' {
		t.Fatalf("negotiation: %c %v", code, err)
	}
	return m
}

func (m *rawMTA) send(code byte, data string) {
	m.t.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	if _, err := m.c.Write(append(append(b, code), data...)); err != nil {
		m.t.Fatalf("send %c: %v", code, err)
	}
}

func (m *rawMTA) reply() (byte, string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(m.c, hdr[:]); err != nil {
		return 0, "", err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(m.c, b); err != nil || len(b) == 0 {
		return 0, "", fmt.Errorf("short packet: %v", err)
	}
	return b[0], string(b[1:]), nil
}

// TestDrain stops the gateway while one MTA connection is idle and another
// is in the middle of a message: the idle one closes at once, the busy one
// gets its verdict, then closes.
func TestDrain(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := filepath.Join(testenv.TempDir(t), "m.sock")
	cfg, err := config.Parse("t.toml", []byte(gatewayTOML("unix:"+clamd.Socket, sock, "")))
	if err != nil {
		t.Fatal(err)
	}
	gw := testenv.StartGateway(t, cfg)
	idle := mta(t, sock)
	if act, err := message(idle, "first\r\n"); err != nil || act.Type != gomilter.ActionAccept {
		t.Fatalf("first message: %v %v", act, err)
	}
	busy := dialRaw(t, sock)
	busy.send('M', "<a@example.org>\x00")
	busy.send('L', "Subject\x00in flight\x00")
	busy.send('N', "")
	// Unknown commands are answered: once this reply is in, the gateway
	// has read the start of the message.
	busy.send('U', "NOOP\x00")
	if code, _, err := busy.reply(); err != nil || code != 'c' {
		t.Fatalf("unknown command: %c %v", code, err)
	}

	stopped := make(chan struct{})
	go func() { gw.Stop(); close(stopped) }()
	time.Sleep(200 * time.Millisecond)
	if _, err := message(idle, "second\r\n"); err == nil {
		t.Error("an idle connection still served a message after the gateway began draining")
	}
	busy.send('B', "body "+testenv.EICAR+"\r\n")
	busy.send('E', "")
	code, text, err := busy.reply()
	if err != nil || code != 'y' || !strings.Contains(text, "550 5.7.1") || !strings.Contains(text, testenv.EicarThreat) {
		t.Fatalf("message in flight during drain: %c %q %v", code, text, err)
	}
	if _, _, err := busy.reply(); !errors.Is(err, io.EOF) {
		t.Errorf("after its last message, the draining connection gave %v, want EOF", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the gateway did not stop after the last message ended")
	}
}
