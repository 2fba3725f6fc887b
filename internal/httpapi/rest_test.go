package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/testenv"
)

type restResult struct {
	Status, Description, FileName string
}

// TestRestRoutes drives clamav-rest's routes against a real clamd, reached
// over TCP (INSTREAM), whose own StreamMaxLength (1M) is below the
// gateway's, so that clamd answers a 1.5 MiB stream with its size-limit
// ERROR: a failed scan, 400 there. (Over a unix socket the gateway hands
// clamd its spool file's descriptor, to which that limit does not apply.)
func TestRestRoutes(t *testing.T) {
	a := startAPIVia(t, testenv.ClamdOptions{StreamMaxLength: "1M"}, "tcp", "")
	clean, eicar := namedFile{"clean.txt", []byte("hello")}, namedFile{"eicar.com", []byte(testenv.EICAR)}
	big := namedFile{"big.bin", randomBytes(1536 << 10)}
	for _, tc := range []struct {
		name   string
		files  []namedFile
		status int
		want   []restResult
	}{
		{"clean", []namedFile{clean}, 200, []restResult{{"OK", "", "clean.txt"}}},
		{"infected", []namedFile{clean, eicar}, 406, []restResult{{"OK", "", "clean.txt"}, {"FOUND", testenv.EicarThreat, "eicar.com"}}},
		{"scan error", []namedFile{big, clean}, 400, nil},
		{"infected beats error", []namedFile{big, eicar}, 406, nil},
		{"no file name", []namedFile{clean, {"", []byte("x")}}, 422, nil},
		{"too large", []namedFile{{"huge", randomBytes(2<<20 + 1)}}, 413, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctype, body := multipartBody(t, tc.files)
			resp, out := a.do(a.open, "POST", "/v2/scan", "", ctype, bytes.NewReader(body))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, out)
			}
			if tc.want == nil {
				return
			}
			var got []restResult
			if err := json.Unmarshal(out, &got); err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("answer %s, want %v", out, tc.want)
			}
		})
	}
	t.Run("v1 error verdict", func(t *testing.T) {
		resp, out := a.do(a.open, "POST", "/v1/scan", "", "", bytes.NewReader(big.data))
		if resp.StatusCode != 200 || decodeScan(t, out).Objects[0].Verdict != "error" {
			t.Fatalf("%d %s", resp.StatusCode, out)
		}
	})
	t.Run("legacy scan", func(t *testing.T) {
		ctype, body := multipartBody(t, []namedFile{clean, eicar})
		resp, out := a.do(a.open, "POST", "/scan", "", ctype, bytes.NewReader(body))
		want := `{"Status":"OK","Description":""}` + "\n" + `{"Status":"FOUND","Description":"` + testenv.EicarThreat + `"}` + "\n"
		if resp.StatusCode != 406 || string(out) != want || resp.Header.Get("Deprecation") == "" {
			t.Fatalf("%d %q", resp.StatusCode, out)
		}
	})
	t.Run("body", func(t *testing.T) {
		for body, want := range map[string]string{testenv.EICAR: "{FOUND " + testenv.EicarThreat + " 406}", "clean": "{OK  200}"} {
			resp, out := a.do(a.open, "POST", "/scanHandlerBody", "", "", strings.NewReader(body))
			if string(out) != want || !strings.HasSuffix(want, fmt.Sprint(resp.StatusCode)+"}") {
				t.Fatalf("%d %q, want %q", resp.StatusCode, out, want)
			}
		}
	})
	t.Run("version and unknown", func(t *testing.T) {
		if resp, out := a.do(a.open, "GET", "/version", "", "", nil); resp.StatusCode != 200 || !strings.Contains(string(out), `"Clamd":"ClamAV `) {
			t.Fatalf("%d %s", resp.StatusCode, out)
		}
		if resp, _ := a.do(a.open, "GET", "/nothing", "", "", nil); resp.StatusCode != 501 {
			t.Fatalf("unknown route: %d, want 501", resp.StatusCode)
		}
	})
}

// TestRestScanFile: /scanFile opens the path beneath the policy's roots,
// as the clamd front's path scans do, and hands clamd the descriptor.
// TestRestPathScans drives clamav-rest's path routes, /scanFile and
// /scanPath, against a real clamd, confined to the policy's root.
func TestRestPathScans(t *testing.T) {
	dir := testenv.TempDir(t)
	os.WriteFile(filepath.Join(dir, "eicar.txt"), []byte(testenv.EICAR), 0o644)
	os.WriteFile(filepath.Join(dir, "clean.txt"), []byte("clean"), 0o644)
	files := testenv.FreePort(t)
	a := startAPI(t, testenv.ClamdOptions{}, fmt.Sprintf(`
[policy.files]
roots = [%q]
allow_writable_root_ancestors = true

[[listener]]
address = "tcp:%s"
protocol = "http"
policy = "files"
`, dir, files))
	t.Run("scanFile", func(t *testing.T) { testScanFile(t, a, dir, files) })
	t.Run("scanPath", func(t *testing.T) { testScanPath(t, a, dir, files) })
}

func testScanFile(t *testing.T, a *api, dir, files string) {
	for _, tc := range []struct {
		addr, path string
		status     int
	}{
		{files, filepath.Join(dir, "eicar.txt"), 406},
		{files, filepath.Join(dir, "clean.txt"), 200},
		{files, filepath.Join(dir, "missing.txt"), 412},
		{files, dir, 412},
		{files, "/etc/passwd", 403},
		{files, filepath.Join(dir, "../../etc/passwd"), 403},
		{a.open, filepath.Join(dir, "eicar.txt"), 403}, // policy without roots
	} {
		resp, out := a.do(tc.addr, "GET", "/scanFile?path="+tc.path, "", "", nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.path, resp.StatusCode, tc.status, out)
		}
		if tc.status == 406 && !strings.Contains(string(out), `"FileName":"`+tc.path+`"`) {
			t.Errorf("answer %s", out)
		}
	}
}
