package gateway_test

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// TestTLSHTTPFront: the HTTP front on a tls: listener, the client's
// certificate choosing its policy: Go's client negotiates HTTP/2 by ALPN
// and real curl speaks HTTP/2 with its certificate; EICAR is infected,
// and the audit log names the certificate.
func TestTLSHTTPFront(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	p := newPKI(t)
	addr, _, gw := tlsGateway(t, c, p, "http")
	cert, key := p.issue(t, "mx1", time.Now(), time.Hour, "dns:mx1.example.org")
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: p.client(t, cert, key), ForceAttemptHTTP2: true}}
	resp, err := client.Post("https://"+addr+"/v1/scan", "application/octet-stream", strings.NewReader(testenv.EICAR))
	must(t, err)
	defer resp.Body.Close()
	var got struct {
		Objects []struct{ Verdict, Threat string } `json:"objects"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 ||
		len(got.Objects) != 1 || got.Objects[0].Verdict != "infected" {
		t.Fatalf("POST /v1/scan over TLS: %s %d %+v %v", resp.Proto, resp.StatusCode, got, err)
	}
	must(t, gw.Log.WaitFor("identity=dns:mx1.example.org", 5*time.Second))
	curl, err := exec.LookPath("curl")
	if err != nil {
		testenv.MissingPeer(t, "curl", "apt-get install curl")
	}
	out, err := exec.Command(curl, "-sS", "--http2", "--cacert", p.caFile, "--cert", cert, "--key", key,
		"-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--data-binary", "clean", "https://"+addr+"/v1/scan").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "2 200" {
		t.Fatalf("curl --http2 with a client certificate: %q %v", out, err)
	}
	out, _ = exec.Command(curl, "-sS", "--cacert", p.caFile, "-o", "/dev/null", "-w", "%{http_code}", "https://"+addr+"/v1/version").CombinedOutput()
	if strings.HasPrefix(string(out), "200") {
		t.Fatalf("curl without a certificate was served: %q", out)
	}
}
