package gateway_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clamgate/internal/testenv"

	gomilter "github.com/d--j/go-milter"
)

// standIn is a misbehaving clamd: it answers PING properly (so that the
// gateway starts and keeps it up) and every INSTREAM with the reply the
// test sets, written raw (with or without clamd's NUL), then closes. A
// stand-in is the point here: no real clamd sends these replies.
type standIn struct {
	ln    net.Listener
	reply atomic.Value // string
}

func startStandIn(t *testing.T) *standIn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := &standIn{ln: ln}
	s.reply.Store("stream: OK\x00")
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *standIn) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	cmd, err := r.ReadString(0)
	if err != nil {
		return
	}
	switch cmd {
	case "zPING\x00":
		_, _ = c.Write([]byte("PONG\x00"))
	case "zINSTREAM\x00":
		for {
			var n uint32
			if binary.Read(r, binary.BigEndian, &n) != nil {
				return
			}
			if n == 0 {
				break
			}
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return
			}
		}
		_, _ = c.Write([]byte(s.reply.Load().(string)))
	}
}

// TestBackendReplyNotVerdict: a backend reply that is not a well-formed
// verdict for the stream sent (another object's, or one cut before clamd's
// NUL by a close) is no verdict on any front: the clamd front answers
// ERROR, ICAP 500 (never 204), the milter its on_failure action (tempfail,
// never accept) for EICAR. A well-formed reply from the same stand-in is
// relayed, which shows the stand-in is heard.
func TestBackendReplyNotVerdict(t *testing.T) {
	backend := startStandIn(t)
	dir := testenv.TempDir(t)
	sock, icapAddr, milterSock := dir+"/gw.sock", testenv.FreePort(t), dir+"/milter.sock"
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "tcp:%s"
timeout = "5s"
[[listener]]
address = "unix:%s"
policy = "p"
[[listener]]
address = "tcp:%s"
protocol = "icap"
policy = "p"
[[listener]]
address = "unix:%s"
protocol = "milter"
policy = "p"
[policy.p]
`, backend.ln.Addr(), sock, icapAddr, milterSock)))

	for _, tc := range []struct {
		name, reply, clamdWant, icapWant string
		tempfail                         bool // the milter's on_failure, else accepted
	}{
		{"well-formed clean", "stream: OK\x00", "stream: OK\x00", "ICAP/1.0 204 ", false},
		{"another object", "other: OK\x00", "stream: clamd sent a reply that is not a verdict. ERROR\x00", "ICAP/1.0 500 ", true},
		{"fd name for a stream", "fd[3]: OK\x00", "stream: clamd sent a reply that is not a verdict. ERROR\x00", "ICAP/1.0 500 ", true},
		{"no NUL, then a close", "stream: OK", "", "ICAP/1.0 500 ", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend.reply.Store(tc.reply)
			got := exchange(t, "unix", sock, step{Data: instream("z", []byte(testenv.EICAR))})
			if tc.clamdWant != "" && string(got) != tc.clamdWant {
				t.Errorf("clamd front: %q, want %q", got, tc.clamdWant)
			}
			if tc.clamdWant == "" {
				failedClosed(t, "clamd front", got)
			}
			if got := icapRespmodBody(t, icapAddr, testenv.EICAR); !strings.HasPrefix(got, tc.icapWant) {
				t.Errorf("ICAP: %q, want %q", firstLine(got), tc.icapWant)
			}
			act := milterMessage(t, milterSock, testenv.EICAR)
			if tempfail := act.SMTPCode == 451; tempfail != tc.tempfail || (!tc.tempfail && act.Type != gomilter.ActionAccept) {
				t.Errorf("milter: %v, want tempfail=%v", act, tc.tempfail)
			}
		})
	}
}

// TestBackendDropsCommand: a backend that closes without answering STATS
// (a clamd dying meanwhile) makes the clamd front answer ERROR; only the
// commands clamd itself answers by closing (SHUTDOWN, DETSTATS...) may end
// that way.
func TestBackendDropsCommand(t *testing.T) {
	backend := startStandIn(t) // answers PING and INSTREAM only
	sock := testenv.TempDir(t) + "/gw.sock"
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "tcp:%s"
timeout = "5s"
[[listener]]
address = "unix:%s"
policy = "p"
[policy.p]
`, backend.ln.Addr(), sock)))
	got := exchange(t, "unix", sock, raw("zSTATS\x00"))
	if !strings.HasPrefix(string(got), "STATS: ") {
		t.Errorf("dropped STATS: %q, want a STATS: ... ERROR line", got)
	}
	failedClosed(t, "STATS dropped by the backend", got)
}

// icapRespmodBody sends body in one RESPMOD that allows 204 and returns the
// answer.
func icapRespmodBody(t *testing.T, addr, body string) string {
	t.Helper()
	httpHdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
	req := fmt.Sprintf("RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\n"+
		"Encapsulated: res-hdr=0, res-body=%d\r\n\r\n%s%x\r\n%s\r\n0\r\n\r\n", len(httpHdr), httpHdr, len(body), body)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	_, err = c.Write([]byte(req))
	must(t, err)
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("ICAP answer: %v", err)
	}
	return status
}

// milterMessage sends one message with body through the milter, as an MTA
// does, and returns the action at its end.
func milterMessage(t *testing.T, sock, body string) *gomilter.Action {
	t.Helper()
	s, err := gomilter.NewClient("unix", sock, gomilter.WithReadTimeout(15*time.Second)).Session(gomilter.NewMacroBag())
	must(t, err)
	defer s.Close()
	milterUpToEnd(t, s, body)
	_, act, err := s.End()
	must(t, err)
	return act
}

// milterUpToEnd sends a message's events up to its end of body.
func milterUpToEnd(t *testing.T, s *gomilter.ClientSession, body string) {
	t.Helper()
	for _, step := range milterEvents(s, []byte(body)) {
		if act, err := step(); err != nil || act.Type != gomilter.ActionContinue {
			t.Fatalf("milter before the end of the message: %v %v", act, err)
		}
	}
}

// milterEvents are an MTA's events for one message, up to its end of
// body, the body sent in chunks.
func milterEvents(s *gomilter.ClientSession, chunks ...[]byte) []func() (*gomilter.Action, error) {
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			return s.Conn("c.example.org", gomilter.FamilyInet, 2525, "192.0.2.7")
		},
		func() (*gomilter.Action, error) { return s.Helo("c.example.org") },
		func() (*gomilter.Action, error) { return s.Mail("<a@example.org>", "") },
		func() (*gomilter.Action, error) { return s.Rcpt("<b@example.net>", "") },
		s.DataStart,
		s.HeaderEnd,
	}
	for _, chunk := range chunks {
		steps = append(steps, func() (*gomilter.Action, error) { return s.BodyChunk(chunk) })
	}
	return steps
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
