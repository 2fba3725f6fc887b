package gateway_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"clamgate/internal/testenv"

	"golang.org/x/sys/unix"
)

// pipelined is what a client saw that wrote a whole session before
// reading any reply.
type pipelined struct {
	sent     int
	sendErr  error
	sendTime time.Duration
	replies  []string
	readErr  error // nil: the server closed the connection (EOF)
}

// pipelineFildes opens nIDSESSION, sends n nFILDES (each with its
// descriptor, as clamd's test_fildes_many does) and nEND without reading,
// then reads every reply until the server closes or wait is over.
func pipelineFildes(t *testing.T, addr, file string, n int, wait time.Duration) pipelined {
	t.Helper()
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	c, err := net.Dial("unix", addr)
	must(t, err)
	defer c.Close()
	uc := c.(*net.UnixConn)
	_ = c.SetDeadline(time.Now().Add(wait))
	var res pipelined
	start := time.Now()
	_, res.sendErr = c.Write([]byte("nIDSESSION\n"))
	for ; res.sendErr == nil && res.sent < n; res.sent++ {
		_, _, res.sendErr = uc.WriteMsgUnix([]byte("nFILDES\n\x00"), unix.UnixRights(int(f.Fd())), nil)
		if res.sendErr != nil {
			break
		}
	}
	if res.sendErr == nil {
		_, res.sendErr = c.Write([]byte("nEND\n"))
	}
	res.sendTime = time.Since(start)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	out, err := io.ReadAll(c)
	res.readErr = err
	if lines := bytes.Split(out, []byte("\n")); len(lines) > 1 {
		for _, l := range lines[:len(lines)-1] {
			res.replies = append(res.replies, string(l))
		}
	}
	return res
}

var fildesReply = regexp.MustCompile(`^(\d+): fd\[\d+\]: OK$`)

// forms are the distinct replies once ids and descriptor numbers are
// hidden, which is how the two sides' bytes are compared: clamd answers a
// session's FILDES on several threads, in any order and any number.
func forms(replies []string) []string {
	var out []string
	for _, r := range replies {
		if m := fildesReply.FindStringSubmatch(r); m != nil {
			r = normalize([]byte(r[len(m[1])+2:]), false)
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestSessionPipelined: a client that writes a session of 1,024 FILDES
// before it reads (clamd's own test_fildes_many) gets every reply from the
// gateway, in order, and the session ends at its END; the gateway reads
// on while the client has not read. Real clamd 1.4.6 is the oracle for the
// bytes of each reply; it stalls on this session itself (it stops reading
// and ends the connection only at its ReadTimeout), which is logged, not
// copied.
func TestSessionPipelined(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: []string{"ReadTimeout 5"}})
	tr := makeTree(t)
	gwUnix, _ := gatewayFor(t, c, fmt.Sprintf(`roots = [%q]`, tr.Root))
	const n = 1024
	clamdSaw := pipelineFildes(t, c.Socket, tr.path("clean.txt"), n, 8*time.Second)
	t.Logf("clamd: %d of %d sent (%v) in %v, %d replies, read ended by %v", clamdSaw.sent, n, clamdSaw.sendErr,
		clamdSaw.sendTime.Round(time.Millisecond), len(clamdSaw.replies), clamdSaw.readErr)
	gw := pipelineFildes(t, gwUnix, tr.path("clean.txt"), n, time.Minute)
	t.Logf("gateway: %d of %d sent (%v) in %v, %d replies, read ended by %v", gw.sent, n, gw.sendErr,
		gw.sendTime.Round(time.Millisecond), len(gw.replies), gw.readErr)
	if gw.sent != n || gw.sendErr != nil || gw.readErr != nil {
		t.Fatalf("gateway: sent %d of %d (%v), read ended by %v: the session did not make progress both ways", gw.sent, n, gw.sendErr, gw.readErr)
	}
	if len(gw.replies) != n {
		t.Fatalf("gateway: %d replies, want %d", len(gw.replies), n)
	}
	for i, r := range gw.replies {
		if m := fildesReply.FindStringSubmatch(r); m == nil || m[1] != strconv.Itoa(i+1) {
			t.Fatalf("gateway reply %d: %q", i+1, r)
		}
	}
	// clamd's last line, when it stalled, is its read timeout's.
	want := slices.DeleteFunc(forms(clamdSaw.replies), func(s string) bool { return s == "COMMAND READ TIMED OUT" })
	if got := forms(gw.replies); !slices.Equal(got, want) {
		t.Errorf("replies differ: gateway %q, clamd %q", got, want)
	}
	if clamdSaw.sent < n || errors.Is(clamdSaw.readErr, os.ErrDeadlineExceeded) {
		t.Logf("clamd left the session hanging until its ReadTimeout (as measured on clamd 1.4.6); the gateway does not")
	}
}
