package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/httpapi"
	"clamgate/internal/testenv"
)

// Tokens of the test configuration, and the SHA-256 it stores.
const (
	tokenApp    = "cg_test-token-app"
	tokenNoScan = "cg_test-token-noscan"
)

// api is a gateway with HTTP listeners in front of a real clamd.
type api struct {
	t       *testing.T
	clamd   *testenv.Clamd
	gw      *testenv.Gateway
	open    string // listener whose policy needs no token
	tokened string // listener whose policy has tokens
	metrics string // the status port
	// statusAddr serves a policy that may read the status page without a
	// token (statusAPI).
	statusAddr string
}

func sha(s string) string {
	tok := []byte(s)
	_ = tok
	return fmt.Sprintf("%x", sha256Sum(s))
}

// startAPI starts clamd and the gateway, which reaches clamd by its unix
// socket; extra is TOML appended.
func startAPI(t *testing.T, opt testenv.ClamdOptions, extra string) *api {
	t.Helper()
	return startAPIVia(t, opt, "unix", extra)
}

// startAPIVia is startAPI with the gateway reaching clamd by network
// ("unix": descriptors of its spool files; "tcp": INSTREAM).
func startAPIVia(t *testing.T, opt testenv.ClamdOptions, network, extra string) *api {
	t.Helper()
	c := testenv.StartClamd(t, opt)
	backend := "unix:" + c.Socket
	if network == "tcp" {
		backend = "tcp:" + c.TCPAddr
	}
	a := &api{t: t, clamd: c, open: testenv.FreePort(t), tokened: testenv.FreePort(t), metrics: testenv.FreePort(t)}
	src := fmt.Sprintf(`
[backend]
address = "%s"
timeout = "20s"
stream_max_length = "10M"

[server]
read_timeout = "5s"
stream_timeout = "60s"
http = "tcp:%s"

[[listener]]
address = "tcp:%s"
protocol = "http"
policy = "local"

[[listener]]
address = "tcp:%s"
protocol = "http"
policy = "app"

[policy.local]
max_object = "2M"

[policy.app]
max_object = "2M"
tokens_sha256 = ["%s"]

[policy.noscan]
commands = ["PING", "VERSION"]
tokens_sha256 = ["%s"]
%s
`, backend, a.metrics, a.open, a.tokened, sha(tokenApp), sha(tokenNoScan), extra)
	cfg, err := config.Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a.gw = testenv.StartGateway(t, cfg)
	return a
}

// do sends one request and reads the whole answer.
func (a *api) do(addr, method, path, token, ctype string, body io.Reader) (*http.Response, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	checkContract(a.t, req, resp, out)
	return resp, out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// multipartBody builds a form with the files given, in order.
func multipartBody(t *testing.T, files []namedFile) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		var w io.Writer
		var err error
		if f.name == "" {
			w, err = mw.CreateFormField("field")
		} else {
			w, err = mw.CreateFormFile("file", f.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.data)
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

type namedFile struct {
	name string
	data []byte
}

func decodeScan(t *testing.T, body []byte) httpapi.ScanResponse {
	t.Helper()
	var out httpapi.ScanResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return out
}

// TestScanSizes uploads raw bodies of 0 B, 4 KiB, 1 MiB, EICAR and one
// past the policy's max_object to a real clamd.
func TestScanSizes(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	for _, tc := range []struct {
		name    string
		body    []byte
		status  int
		verdict string
	}{
		{"empty", nil, 200, "clean"},
		{"4KiB", randomBytes(4 << 10), 200, "clean"},
		{"1MiB", randomBytes(1 << 20), 200, "clean"},
		{"eicar", []byte(testenv.EICAR), 200, "infected"},
		{"limit", randomBytes(2 << 20), 200, "clean"},
		{"over limit", randomBytes(2<<20 + 1), 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := a.do(a.open, "POST", "/v1/scan?name="+strings.ReplaceAll(tc.name, " ", "_"), "", "application/octet-stream", bytes.NewReader(tc.body))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				return
			}
			out := decodeScan(t, body)
			o := out.Objects[0]
			if len(out.Objects) != 1 || o.Verdict != tc.verdict || o.Size != int64(len(tc.body)) || o.Database != a.database() {
				t.Fatalf("answer %s", body)
			}
			if tc.verdict == "infected" && o.Threat != testenv.EicarThreat {
				t.Fatalf("threat %q", o.Threat)
			}
		})
	}
}

// TestScanOverLimitBeforeBody: a Content-Length past max_object is
// refused before the body is read: no 100 Continue, 413 at once.
func TestScanOverLimitBeforeBody(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	c, err := net.Dial("tcp", a.open)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", 3<<20)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413 before the body", resp.StatusCode)
	}
}

// TestScanMultipart scans many files of one form, each as a stream.
func TestScanMultipart(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	var files []namedFile
	for i := range 40 {
		data := randomBytes(4 << 10)
		if i%10 == 3 {
			data = []byte(testenv.EICAR)
		}
		files = append(files, namedFile{fmt.Sprintf("f%02d.bin", i), data})
	}
	files = append(files, namedFile{"", []byte("a form field, not scanned")})
	ctype, body := multipartBody(t, files)
	resp, out := a.do(a.open, "POST", "/v1/scan", "", ctype, bytes.NewReader(body))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	res := decodeScan(t, out)
	if len(res.Objects) != 40 {
		t.Fatalf("%d objects, want 40", len(res.Objects))
	}
	for i, o := range res.Objects {
		want := "clean"
		if i%10 == 3 {
			want = "infected"
		}
		if o.Name != files[i].name || o.Verdict != want || o.Size != int64(len(files[i].data)) {
			t.Errorf("object %d: %+v, want %s %s", i, o, files[i].name, want)
		}
	}
}

// TestCredentials: 401 without or with a wrong token, 403 for a policy
// that may not stream, 200 with a token.
func TestCredentials(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"no token", "", 401},
		{"wrong token", "cg_wrong", 401},
		{"hash as token", sha(tokenApp), 401},
		{"policy without INSTREAM", tokenNoScan, 403},
		{"token", tokenApp, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := a.do(a.tokened, "POST", "/v1/scan", tc.token, "", strings.NewReader(testenv.EICAR))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	// A token chooses its policy on a listener whose own policy needs none.
	resp, _ := a.do(a.open, "POST", "/v1/scan", tokenNoScan, "", strings.NewReader("x"))
	if resp.StatusCode != 403 {
		t.Fatalf("noscan token on the open listener: %d, want 403", resp.StatusCode)
	}
}

// TestMalformed: requests the API cannot read are 400, never a verdict.
func TestMalformed(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	for _, tc := range []struct {
		name, ctype, body string
	}{
		{"no boundary", "multipart/form-data", "x"},
		{"no parts", "multipart/form-data; boundary=zz", "--zz--\r\n"},
		{"truncated multipart", "multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc"},
		{"no file part", "multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nabc\r\n--zz--\r\n"},
		{"large form field", "multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n" + strings.Repeat("a", 65<<10) + "\r\n--zz--\r\n"},
		{"large part header", "multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-Big: " + strings.Repeat("a", 9<<10) + "\r\n\r\nabc\r\n--zz--\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := a.do(a.open, "POST", "/v1/scan", "", tc.ctype, strings.NewReader(tc.body))
			want := 400
			if strings.Contains(tc.name, "header") {
				want = 431
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, body)
			}
		})
	}
}

// TestNoEngine: with clamd gone, a scan is 503 with Retry-After.
func TestNoEngine(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	a.clamd.Stop()
	for _, path := range []string{"/v1/scan", "/v2/scan"} {
		ctype, body := multipartBody(t, []namedFile{{"a.txt", []byte("hello")}})
		resp, out := a.do(a.open, "POST", path, "", ctype, bytes.NewReader(body))
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: status %d, Retry-After %q: %s", path, resp.StatusCode, resp.Header.Get("Retry-After"), out)
		}
	}
	resp, _ := a.do(a.open, "GET", "/v1/version", "", "", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("version: %d, want 503", resp.StatusCode)
	}
}

// TestBusy: past the client's queue, 429 with Retry-After, and every
// other answer a completed scan.
func TestBusy(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{SlowSignatures: 30000}, `
[policy.busy]
max_concurrent = 1
max_queue = 1
tokens_sha256 = ["`+sha("cg_busy")+`"]
`)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 8 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+a.tokened+"/v1/scan", bytes.NewReader(randomBytes(1<<20)))
			req.Header.Set("Authorization", "Bearer cg_busy")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			checkContract(t, req, resp, body)
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			switch resp.StatusCode {
			case 429:
				if resp.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			case 200:
				if o := decodeScan(t, body).Objects[0]; o.Verdict != "clean" {
					t.Errorf("verdict %+v", o)
				}
			default:
				t.Errorf("status %d: %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if codes[429] == 0 || codes[200] == 0 {
		t.Fatalf("answers %v: want some 200 and some 429", codes)
	}
}

// TestDisconnectMidUpload: a client gone mid-upload leaves nothing held:
// the spool is empty again and the next scan is served.
func TestDisconnectMidUpload(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	for range 5 {
		c, err := net.Dial("tcp", a.open)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20+4096)
		c.Write(randomBytes(512 << 10))
		time.Sleep(100 * time.Millisecond)
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v := metric(t, a.metrics, "clamgate_spool_bytes"); v == "0" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("spool still holds %s bytes after the clients left", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, body := a.do(a.open, "POST", "/v1/scan", "", "", strings.NewReader(testenv.EICAR))
	if resp.StatusCode != 200 || decodeScan(t, body).Objects[0].Verdict != "infected" {
		t.Fatalf("after disconnects: %d %s", resp.StatusCode, body)
	}
}

// metric reads one sample of the gateway's /metrics.
func metric(t *testing.T, addr, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return ""
}

// TestVersion reads the engine's and database's versions.
func TestVersion(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	if resp, _ := a.do(a.tokened, "GET", "/v1/version", "", "", nil); resp.StatusCode != 401 {
		t.Fatalf("version without a token: %d, want 401", resp.StatusCode)
	}
	resp, doc := a.do(a.open, "GET", "/v1/openapi.json", "", "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(doc, httpapi.OpenAPI()) {
		t.Fatalf("openapi.json: %d", resp.StatusCode)
	}
	resp, body := a.do(a.open, "GET", "/v1/version", "", "", nil)
	var v httpapi.Version
	if resp.StatusCode != 200 || json.Unmarshal(body, &v) != nil || !strings.HasPrefix(v.Engine, "ClamAV ") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// database is the database version clamd's VERSION names: "" with the
// tests' database, which has no daily.
func (a *api) database() string {
	a.t.Helper()
	c := a.clamd.Client("unix")
	reply, err := c.Command(context.Background(), "VERSION")
	if err != nil {
		a.t.Fatal(err)
	}
	v, err := httpapi.ParseVersion(reply)
	if err != nil {
		a.t.Fatalf("VERSION %q: %v", reply, err)
	}
	return v.Database
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in      string
		engine  string
		db      string
		built   bool
		invalid bool
	}{
		{"ClamAV 1.4.3/27000/Sat Dec  5 10:00:00 2026", "ClamAV 1.4.3", "27000", true, false},
		{"ClamAV 1.4.6", "ClamAV 1.4.6", "", false, false},
		{"ClamAV 1.4.3/27000", "", "", false, true},
		{"stream: OK", "", "", false, true},
		{"", "", "", false, true},
	} {
		v, err := httpapi.ParseVersion(tc.in)
		if (err != nil) != tc.invalid || v.Engine != tc.engine || v.Database != tc.db || v.Built.IsZero() == tc.built {
			t.Errorf("ParseVersion(%q) = %+v, %v", tc.in, v, err)
		}
	}
}

// TestRefusedPeer: on a unix socket, a peer the policy's users do not
// admit is refused by the gateway on connect; the front words it as 403.
func TestRefusedPeer(t *testing.T) {
	sock := testenv.TempDir(t) + "/http.sock"
	startAPI(t, testenv.ClamdOptions{}, `
[policy.nobody]
users = ["nobody"]

[[listener]]
address = "unix:`+sock+`"
protocol = "http"
policy = "nobody"
mode = "0666"
`)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Post("http://gw/v1/scan", "application/octet-stream", strings.NewReader(testenv.EICAR))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "not allowed by client policy") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
