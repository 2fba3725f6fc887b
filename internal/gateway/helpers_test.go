package gateway_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/testenv"

	"golang.org/x/sys/unix"
)

// step is one write of a request; FD, when set, rides along as SCM_RIGHTS.
type step struct {
	Data  []byte
	FD    *os.File
	Delay time.Duration // pause before this write (clamd reacts to packet boundaries)
}

// exchange sends a request and returns every byte the server sends back
// until it closes the connection.
func exchange(t *testing.T, network, addr string, steps ...step) []byte {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	for _, s := range steps {
		time.Sleep(s.Delay)
		if s.FD != nil {
			_, _, err = c.(*net.UnixConn).WriteMsgUnix(s.Data, unix.UnixRights(int(s.FD.Fd())), nil)
		} else {
			_, err = c.Write(s.Data)
		}
		if err != nil {
			break // the server may have answered and closed already
		}
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading reply from %s: %v (got %q)", addr, err, out.Bytes())
	}
	return out.Bytes()
}

func isReset(err error) bool {
	return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

func raw(s string) step { return step{Data: []byte(s)} }

// chunk frames p as one INSTREAM chunk.
func chunk(p []byte) []byte {
	n := len(p)
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, p...)
}

func instream(framing string, parts ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString(cmd(framing, "INSTREAM"))
	for _, p := range parts {
		b.Write(chunk(p))
	}
	b.Write([]byte{0, 0, 0, 0})
	return b.Bytes()
}

// cmd frames a command: "z" -> zCMD\0, "n" -> nCMD\n, "" -> CMD\n.
func cmd(framing, text string) string {
	switch framing {
	case "z":
		return "z" + text + "\x00"
	case "n":
		return "n" + text + "\n"
	}
	return text + "\n"
}

var (
	fdName    = regexp.MustCompile(`fd\[\d+\]`)
	statsBody = regexp.MustCompile(`(?s)POOLS: .*?\nEND`)
)

// normalize hides what legitimately differs between two clamd replies:
// descriptor numbers chosen by the receiving process, STATS timings, and
// the order of MULTISCAN's parallel results.
func normalize(b []byte, sortLines bool) string {
	s := fdName.ReplaceAllString(string(b), "fd[N]")
	s = statsBody.ReplaceAllString(s, "POOLS: <stats>\nEND")
	if !sortLines {
		return s
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == 0 || r == '\n' })
	sort.Strings(parts)
	return strings.Join(parts, "|")
}

// tree is a directory of test files that both clamd and the gateway scan.
type tree struct {
	Root string
}

func (tr tree) path(p string) string { return filepath.Join(tr.Root, p) }

func makeTree(t *testing.T) tree {
	t.Helper()
	root := testenv.TempDir(t)
	files := map[string]string{
		"clean.txt":             "just some clean text\n",
		"eicar.com":             testenv.EICAR,
		"marked.com":            testenv.EICAR + testenv.Marker,
		"with space/e icar.com": testenv.EICAR,
		"dir/aa_clean.txt":      "clean\n",
		"dir/mm_eicar.com":      testenv.EICAR,
		"dir/bb_clean.txt":      "clean too\n",
		"dir/cc_eicar.com":      testenv.EICAR,
		"dir/sub/s_eicar.com":   testenv.EICAR,
		"dir/sub/s_clean.txt":   "clean\n",
		"cleandir/a.txt":        "a\n",
		"cleandir/deep/b.txt":   "b\n",
	}
	// Create in a fixed order so inode order (which clamd walks by) is
	// deterministic, and differs from name order.
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clam, err := os.ReadFile("/usr/share/clamav-testfiles/clam.exe")
	if err != nil {
		t.Fatalf("clamav-testfiles is not installed: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(root, "dir/clam.exe"), clam, 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "emptydir"), 0o755))
	must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	return tree{Root: root}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// gatewayFor starts a gateway in front of clamd with one unix and one TCP
// listener, both serving the policy written in policyTOML.
func gatewayFor(t *testing.T, c *testenv.Clamd, policyTOML string) (unixAddr, tcpAddr string) {
	t.Helper()
	unixAddr = filepath.Join(testenv.TempDir(t), "gw.sock")
	tcpAddr = testenv.FreePort(t)
	listeners := fmt.Sprintf("[[listener]]\naddress = \"unix:%s\"\npolicy = \"test\"\nmode = \"0666\"\n\n"+
		"[[listener]]\naddress = \"tcp:%s\"\npolicy = \"test\"\n", unixAddr, tcpAddr)
	testenv.StartGateway(t, mustParse(t, gatewaySource(c, "", listeners, policyTOML)))
	return unixAddr, tcpAddr
}

// gatewaySource is the configuration of a test gateway in front of c:
// serverTOML adds to [server], listeners are whole [[listener]] blocks,
// and each serves [policy.test], written in policyTOML.
func gatewaySource(c *testenv.Clamd, serverTOML, listeners, policyTOML string) string {
	return fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "20s"
stream_max_length = "10M"

[server]
read_timeout = "5s"
%s

%s

[policy.test]
%s
`, c.Socket, serverTOML, listeners, policyTOML)
}

func mustParse(t testing.TB, src string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, src)
	}
	return cfg
}
