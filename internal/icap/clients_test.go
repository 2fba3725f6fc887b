package icap_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/testenv"
)

// icapGateway starts a gateway with one ICAP listener in front of c; extra
// is TOML added to the file (an [icap] section, say).
func icapGateway(t *testing.T, c *testenv.Clamd, extra string) (host, port string) {
	t.Helper()
	addr := testenv.FreePort(t)
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "10s"
stream_max_length = "10M"

[server]
read_timeout = "2s"

[[listener]]
address = "tcp:%s"
protocol = "icap"
policy = "proxy"

[policy.proxy]

%s
`, c.Socket, addr, extra)
	cfg, err := config.Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	testenv.StartGateway(t, cfg)
	host, port, _ = net.SplitHostPort(addr)
	return host, port
}

// files writes the bodies the tests send: small and large clean files and
// EICAR.
func files(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	large := make([]byte, 600<<10) // beyond the in-memory spool
	rand.Read(large)
	out := map[string]string{}
	for name, data := range map[string][]byte{
		"small": []byte("a clean little file\n"),
		"large": large,
		"eicar": []byte(testenv.EICAR),
		// EICAR at the end of a body too large for the in-memory spool: on
		// the echo path the scan reads the spool file.
		"large-eicar": append(append([]byte{}, large...), testenv.EICAR...),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

type icapResult struct {
	stdout string
	body   []byte // what c-icap-client wrote with -o; nil when nothing
}

func (r icapResult) status() string {
	for _, l := range strings.Split(r.stdout, "\n") {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "ICAP/1.0 ") {
			return s
		}
	}
	return "no ICAP status in: " + r.stdout
}

func cicap(t *testing.T, host, port, file string, opts ...string) icapResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	args := append([]string{"-i", host, "-p", port, "-s", "avscan", "-f", file, "-resp", "http://example.org/download?x=<1>", "-v", "-o", out}, opts...)
	cmd := exec.Command("c-icap-client", args...)
	stdout, err := cmd.CombinedOutput()
	if err != nil && len(stdout) == 0 {
		t.Fatalf("c-icap-client: %v", err)
	}
	body, _ := os.ReadFile(out)
	return icapResult{stdout: string(stdout), body: body}
}

// TestCICAPClient drives the gateway with c-icap-client: clean and EICAR
// bodies; previews of 0, small, the service's 1024 and none; with and
// without 204 outside the preview.
func TestCICAPClient(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	// A preview, unlike the default, so that the preview paths are covered.
	host, port := icapGateway(t, c, "[icap]\npreview = 1024\n")
	fs := files(t)
	for _, preview := range [][]string{nil, {"-w", "0"}, {"-w", "10"}, {"-nopreview"}} {
		for _, no204 := range []bool{false, true} {
			opts := append([]string{}, preview...)
			if no204 {
				opts = append(opts, "-no204")
			}
			for _, name := range []string{"small", "large", "eicar", "large-eicar"} {
				t.Run(fmt.Sprintf("%s %v", name, opts), func(t *testing.T) {
					r := cicap(t, host, port, fs[name], opts...)
					want, _ := os.ReadFile(fs[name])
					// A body that fits the service's 1024-byte preview gets 204
					// (RFC 3507 4.5), with or without Allow: 204.
					inPreview := preview == nil && len(want) < 1024
					checkResult(t, r, name, want, no204, inPreview)
				})
			}
		}
	}
}

func checkResult(t *testing.T, r icapResult, name string, sent []byte, no204, inPreview bool) {
	t.Helper()
	switch {
	case strings.HasSuffix(name, "eicar"):
		if r.status() != "ICAP/1.0 200 OK" || !strings.Contains(r.stdout, "X-Infection-Found: Type=0; Resolution=2; Threat="+testenv.EicarThreat+";") ||
			!strings.Contains(r.stdout, "X-Virus-ID: "+testenv.EicarThreat) || !strings.Contains(r.stdout, "HTTP/1.1 403 Forbidden") {
			t.Fatalf("EICAR not blocked:\n%s", r.stdout)
		}
		if !bytes.Contains(r.body, []byte(testenv.EicarThreat)) || !bytes.Contains(r.body, []byte("http://example.org/download?x=&lt;1&gt;")) {
			t.Fatalf("block page does not name the threat and the escaped URL:\n%s", r.body)
		}
	case no204 && !inPreview:
		if r.status() != "ICAP/1.0 200 OK" || !bytes.Equal(r.body, sent) {
			t.Fatalf("clean body not echoed intact (%d of %d bytes):\n%s", len(r.body), len(sent), r.stdout)
		}
	default:
		// c-icap-client previews whatever the service asks: a body inside
		// the preview gets 204 even without Allow: 204.
		if r.status() != "ICAP/1.0 204 No Content" {
			t.Fatalf("clean: %s\n%s", r.status(), r.stdout)
		}
	}
}

func TestOptions(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	host, port := icapGateway(t, c, "[icap]\nservice = \"virus\"\npreview = 4096\ntransfer_ignore = \"jpg, png\"\nmax_connections = 7\n")
	out, _ := exec.Command("c-icap-client", "-i", host, "-p", port, "-s", "virus", "-v").CombinedOutput()
	for _, want := range []string{"ICAP/1.0 200 OK", "Methods: RESPMOD, REQMOD", "Preview: 4096", "Allow: 204", "Transfer-Preview: *",
		"Transfer-Ignore: jpg, png", "Max-Connections: 7", "Options-TTL: 3600", `ISTag: "CG-`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("OPTIONS lacks %q:\n%s", want, out)
		}
	}
	out, _ = exec.Command("c-icap-client", "-i", host, "-p", port, "-s", "avscan", "-v").CombinedOutput()
	if !strings.Contains(string(out), "404") {
		t.Errorf("unknown service:\n%s", out)
	}
}

// TestFailClosed stops clamd: by default the client gets ICAP 500 (squid
// then applies its bypass setting); on_failure = "block" gives the page.
// c-icap-client does not print a 500, so the raw protocol checks it.
func TestFailClosed(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	fs := files(t)
	host, port := icapGateway(t, c, "")
	bhost, bport := icapGateway(t, c, "[icap]\non_failure = \"block\"\n")
	c.Kill()
	for _, name := range []string{"small", "large", "eicar"} {
		data, _ := os.ReadFile(fs[name])
		for _, preview := range []int{-1, 0, 1024} {
			// A 100 Continue may come first: the rest of the body is asked
			// for before clamd is dialled.
			got := strings.TrimPrefix(rawICAP(t, net.JoinHostPort(host, port), respmod(data, preview, false)), "ICAP/1.0 100 Continue\r\n\r\n")
			if !strings.HasPrefix(got, "ICAP/1.0 500 ") {
				t.Errorf("%s (preview %d) with clamd down:\n%s", name, preview, got)
			}
		}
		r := cicap(t, bhost, bport, fs[name], "-nopreview", "-no204")
		if r.status() != "ICAP/1.0 200 OK" || !bytes.Contains(r.body, []byte("could not be scanned")) {
			t.Errorf("%s with clamd down, on_failure=block: %s\n%s", name, r.stdout, r.body)
		}
	}
}

func TestOverLimit(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	fs := files(t)
	host, port := icapGateway(t, c, "[icap]\nmax_object = \"100K\"\n")
	phost, pport := icapGateway(t, c, "[icap]\nmax_object = \"100K\"\nover_limit = \"pass\"\n")
	large, _ := os.ReadFile(fs["large"])
	for _, opts := range [][]string{nil, {"-nopreview"}, {"-no204"}, {"-nopreview", "-no204"}} {
		// c-icap-client does not print a final answer to its preview: the
		// raw protocol checks that case.
		if len(opts) > 0 && opts[0] == "-nopreview" {
			r := cicap(t, host, port, fs["large"], opts...)
			if r.status() != "ICAP/1.0 200 OK" || !bytes.Contains(r.body, []byte("Too large to scan")) {
				t.Errorf("block %v: %s", opts, r.stdout)
			}
		} else if got := rawICAP(t, net.JoinHostPort(host, port), respmod(large, 1024, false)); !strings.Contains(got, "Too large to scan") {
			t.Errorf("block with preview: %s", got)
		}
		r := cicap(t, phost, pport, fs["large"], opts...)
		ok := r.status() == "ICAP/1.0 204 No Content" || (r.status() == "ICAP/1.0 200 OK" && bytes.Equal(r.body, large))
		if !ok {
			t.Errorf("pass %v: %s (%d bytes back)", opts, r.stdout, len(r.body))
		}
	}
	if r := cicap(t, host, port, fs["eicar"]); !strings.Contains(r.stdout, testenv.EicarThreat) {
		t.Errorf("small EICAR under the limit not blocked: %s", r.stdout)
	}
}

// respmod builds a RESPMOD request for data; preview < 0 sends none.
func respmod(data []byte, preview int, allow204 bool) []byte {
	httpHdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(data))
	var b bytes.Buffer
	fmt.Fprintf(&b, "RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: res-hdr=0, res-body=%d\r\n", len(httpHdr))
	if allow204 {
		b.WriteString("Allow: 204\r\n")
	}
	first, rest := data, []byte(nil)
	if preview >= 0 {
		fmt.Fprintf(&b, "Preview: %d\r\n", preview)
		if len(data) > preview {
			first, rest = data[:preview], data[preview:]
		}
	}
	b.WriteString("\r\n" + httpHdr)
	writeChunk(&b, first)
	switch {
	case preview >= 0 && rest == nil:
		b.WriteString("0; ieof\r\n\r\n")
	case preview >= 0:
		b.WriteString("0\r\n\r\n")
		writeChunk(&b, rest)
		b.WriteString("0\r\n\r\n")
	default:
		b.WriteString("0\r\n\r\n")
	}
	return b.Bytes()
}

func writeChunk(b *bytes.Buffer, p []byte) {
	if len(p) > 0 {
		fmt.Fprintf(b, "%x\r\n%s\r\n", len(p), p)
	}
}

// rawICAP sends req as fast as the server reads it and returns everything
// the server answers before it closes or goes quiet for a second. A
// preview's rest is sent whatever the answer: what a careless client does.
func rawICAP(t *testing.T, addr string, req []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write(req)
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String()
		}
	}
}

// TestISTagFollowsDatabase: a new database is a new ISTag, so that squid
// drops the verdicts it cached under the old one.
func TestISTagFollowsDatabase(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.FrugalClamd})
	host, port := icapGateway(t, c, fmt.Sprintf("[database]\ndir = %q\nreload = \"frugal\"\nsettle = \"200ms\"\n", c.DBDir))
	istag := func() string {
		out, _ := exec.Command("c-icap-client", "-i", host, "-p", port, "-s", "avscan", "-v").CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "ISTag: "); ok {
				return v
			}
		}
		t.Fatalf("no ISTag in OPTIONS:\n%s", out)
		return ""
	}
	before := istag()
	if err := os.WriteFile(filepath.Join(c.DBDir, "new.ndb"), []byte("Clamgate.New:0:*:434c414d474154452d4e4557\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for istag() == before {
		if time.Now().After(deadline) {
			t.Fatalf("ISTag still %s 15 s after the database changed", before)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
