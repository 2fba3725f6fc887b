package icap_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"clamgate/internal/deploy"
	"clamgate/internal/testenv"
)

// TestSquidDeploySnippet runs a real squid with the ICAP snippet deploy
// writes (deploy.SquidFile, its address moved to the test gateway's): no
// preview settings of its own, REQMOD for what users send and RESPMOD for
// what they fetch. An EICAR upload is refused before it reaches the origin,
// a clean one arrives intact; an EICAR download becomes the block page, a
// clean one arrives intact. (Whether squid previews is the gateway's
// OPTIONS to decide: the snippet no longer says.)
func TestSquidDeploySnippet(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	host, port := icapGateway(t, c, "")
	var mu sync.Mutex
	var received [][]byte
	clean := []byte(strings.Repeat("a clean upload\n", 300))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			received = append(received, b)
			mu.Unlock()
			w.Write([]byte("stored\n"))
			return
		}
		body := clean
		if r.URL.Path == "/eicar.com" {
			body = []byte(testenv.EICAR)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		time.Sleep(time.Millisecond) // squid 5.7 bug 5352, see origin
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	snippet := strings.ReplaceAll(deploy.SquidFile(), "127.0.0.1:1344", net.JoinHostPort(host, port))
	if strings.Contains(snippet, "\nicap_preview") || !strings.Contains(snippet, "reqmod_precache") {
		t.Fatalf("the snippet sets a preview or lacks REQMOD:\n%s", snippet)
	}
	sq := startSquidWith(t, snippet)
	proxy, _ := url.Parse(sq.proxy)
	// A new connection per request: squid may close one after its 403
	// page while Go's pool still holds it, and a POST on it is not retried
	// (seen as "write: broken pipe" on a loaded machine).
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy), DisableKeepAlives: true}, Timeout: 30 * time.Second}
	post := func(body []byte) (int, []byte) {
		resp, err := client.Post(srv.URL+"/upload", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST through squid: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, body := post([]byte(testenv.EICAR)); code != 403 || !bytes.Contains(body, []byte(testenv.EicarThreat)) {
		t.Errorf("EICAR upload: status %d\n%s", code, body)
	}
	if code, _ := post(clean); code != 200 {
		t.Errorf("clean upload: status %d", code)
	}
	mu.Lock()
	if len(received) != 1 || !bytes.Equal(received[0], clean) {
		t.Errorf("the origin received %d uploads (want the clean one only, intact)", len(received))
	}
	mu.Unlock()
	if code, body := sq.get(t, srv.URL+"/eicar.com"); code != 403 || !bytes.Contains(body, []byte(testenv.EicarThreat)) {
		t.Errorf("EICAR download: status %d\n%s", code, body)
	}
	if code, body := sq.get(t, srv.URL+"/clean.txt"); code != 200 || !bytes.Equal(body, clean) {
		t.Errorf("clean download: status %d, %d bytes", code, len(body))
	}
	log, _ := os.ReadFile(sq.icapLog)
	for _, want := range []string{"REQMOD 200 ", "RESPMOD "} {
		if !strings.Contains(string(log), want) {
			t.Errorf("squid's ICAP log has no %q:\n%s", want, log)
		}
	}
}
