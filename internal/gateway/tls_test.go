package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
	"clamgate/internal/tlsid"
)

// pki is a private CA and the certificates a TLS test needs, as files.
type pki struct {
	dir    string
	ca     *tlsid.Issuer
	caFile string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := testenv.TempDir(t)
	ca, pair, err := tlsid.NewCA("clamgate test CA", 24*time.Hour)
	must(t, err)
	caFile, _, err := pair.Write(dir, "ca")
	must(t, err)
	return &pki{dir: dir, ca: ca, caFile: caFile}
}

// issue writes a certificate for names valid from notBefore for validity.
func (p *pki) issue(t testing.TB, name string, notBefore time.Time, validity time.Duration, names ...string) (cert, key string) {
	t.Helper()
	pair, err := p.ca.Issue(names, notBefore, validity)
	must(t, err)
	cert, key, err = pair.Write(p.dir, name)
	must(t, err)
	return cert, key
}

func (p *pki) client(t testing.TB, cert, key string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	data, err := os.ReadFile(p.caFile)
	must(t, err)
	pool.AppendCertsFromPEM(data)
	c := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		must(t, err)
		c.Certificates = []tls.Certificate{kp}
	}
	return c
}

// tlsGateway starts a gateway with a TLS listener serving policies mx
// (dns:mx1.example.org) and proxies (uri:spiffe://example.org/proxy/*),
// and a status server for its metrics.
func tlsGateway(t *testing.T, c *testenv.Clamd, p *pki, protocol string) (tlsAddr, metricsAddr string, gw *testenv.Gateway) {
	t.Helper()
	return tlsGatewayWith(t, c, p, protocol, "")
}

// tlsGatewayWith is tlsGateway with more [[listener]] blocks.
func tlsGatewayWith(t testing.TB, c *testenv.Clamd, p *pki, protocol, listeners string) (tlsAddr, metricsAddr string, gw *testenv.Gateway) {
	t.Helper()
	cert, key := p.issue(t, "server", time.Now(), time.Hour, "dns:localhost", "ip:127.0.0.1")
	tlsAddr, metricsAddr = testenv.FreePort(t), testenv.FreePort(t)
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "20s"

[server]
read_timeout = "5s"
http = "tcp:%s"

[[listener]]
address = "tls:%s"
protocol = %q
policies = ["mx", "proxies"]
tls_cert = %q
tls_key = %q
tls_client_ca = %q

%s
[policy.mx]
tls_identities = ["dns:mx1.example.org"]

[policy.proxies]
tls_identities = ["uri:spiffe://example.org/proxy/*"]
`, c.Socket, metricsAddr, tlsAddr, protocol, cert, key, p.caFile, listeners)
	gw = testenv.StartGateway(t, mustParse(t, src))
	return tlsAddr, metricsAddr, gw
}

// tlsExchange sends req over TLS and returns the reply up to the close.
func tlsExchange(addr string, cfg *tls.Config, req []byte) ([]byte, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

// TestTLSClamdPoliciesByCertificate: over a real clamd, the verified
// client certificate chooses the policy, and the audit log names it.
func TestTLSClamdPoliciesByCertificate(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	p := newPKI(t)
	addr, _, gw := tlsGateway(t, c, p, "clamd")
	mxCert, mxKey := p.issue(t, "mx1", time.Now(), time.Hour, "dns:mx1.example.org")
	proxyCert, proxyKey := p.issue(t, "proxy7", time.Now(), time.Hour, "uri:spiffe://example.org/proxy/7", "cn:proxy-7")
	for _, tc := range []struct {
		name, cert, key, client, identity string
	}{
		{"mx", mxCert, mxKey, "mx", "dns:mx1.example.org"},
		{"proxy", proxyCert, proxyKey, "proxies", "uri:spiffe://example.org/proxy/7"},
	} {
		got, err := tlsExchange(addr, p.client(t, tc.cert, tc.key), instream("z", []byte(testenv.EICAR)))
		if err != nil || !strings.HasPrefix(string(got), "stream: Eicar-Test-Signature") || !strings.HasSuffix(string(got), " FOUND\x00") {
			t.Fatalf("%s: INSTREAM EICAR over TLS = %q, %v", tc.name, got, err)
		}
		got, err = tlsExchange(addr, p.client(t, tc.cert, tc.key), instream("n", []byte("clean\n")))
		if err != nil || string(got) != "stream: OK\n" {
			t.Fatalf("%s: INSTREAM clean over TLS = %q, %v", tc.name, got, err)
		}
		line := fmt.Sprintf(`msg=scan client=%s protocol=clamd object=stream verdict=infected`, tc.client)
		must(t, gw.Log.WaitFor(line, 5*time.Second))
		must(t, gw.Log.WaitFor("identity="+tc.identity, 5*time.Second))
	}
}

// TestTLSRefusals: each refusal happens in the handshake, before any byte
// of the protocol is read or answered, and is counted by reason.
func TestTLSRefusals(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	p := newPKI(t)
	addr, metricsAddr, _ := tlsGateway(t, c, p, "clamd")
	other := newPKI(t)
	strangerCert, strangerKey := other.issue(t, "stranger", time.Now(), time.Hour, "dns:mx1.example.org")
	expiredCert, expiredKey := p.issue(t, "expired", time.Now().Add(-48*time.Hour), time.Hour, "dns:mx1.example.org")
	nobodyCert, nobodyKey := p.issue(t, "nobody", time.Now(), time.Hour, "dns:mx9.example.org")
	for _, tc := range []struct {
		name, cert, key, reason string
	}{
		{"no certificate", "", "", "no_certificate"},
		{"unknown CA", strangerCert, strangerKey, "unknown_ca"},
		{"expired", expiredCert, expiredKey, "expired"},
		{"no policy", nobodyCert, nobodyKey, "no_policy"},
	} {
		got, err := tlsExchange(addr, p.client(t, tc.cert, tc.key), []byte("zPING\x00"))
		// A certificate matching no policy is verified, then the connection
		// closed; the others end in the handshake with an alert.
		if len(got) > 0 || (err == nil) != (tc.reason == "no_policy") {
			t.Errorf("%s: served: %q, %v", tc.name, got, err)
		}
		waitMetric(t, "http://"+metricsAddr, fmt.Sprintf(`clamgate_tls_refusals_total{listener="tls:%s",reason="%s"} 1`, addr, tc.reason))
	}
	// TLS 1.2 where 1.3 is the minimum (tls_min_version unset).
	mxCert, mxKey := p.issue(t, "mx1", time.Now(), time.Hour, "dns:mx1.example.org")
	old := p.client(t, mxCert, mxKey)
	old.MaxVersion = tls.VersionTLS12
	if got, err := tlsExchange(addr, old, []byte("zPING\x00")); err == nil || len(got) > 0 {
		t.Errorf("TLS 1.2 client served: %q, %v", got, err)
	}
	waitMetric(t, "http://"+metricsAddr, fmt.Sprintf(`clamgate_tls_refusals_total{listener="tls:%s",reason="handshake"}`, addr))
	// Plain clamd protocol on the TLS port: no reply in its protocol.
	got := exchange(t, "tcp", addr, raw("zPING\x00"))
	if strings.Contains(string(got), "PONG") {
		t.Errorf("plain TCP on a TLS port answered %q", got)
	}
	waitMetric(t, "http://"+metricsAddr, fmt.Sprintf(`clamgate_tls_refusals_total{listener="tls:%s",reason="not_tls"} 1`, addr))
	waitMetric(t, "http://"+metricsAddr, fmt.Sprintf(`clamgate_tls_certificate_expiry_seconds{address="tls:%s",role="listener"}`, addr))
}

// TestTLSRealClients: openssl s_client and Python's ssl module speak
// clamd's protocol to a TLS listener with their client certificates.
func TestTLSRealClients(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	p := newPKI(t)
	addr, _, gw := tlsGateway(t, c, p, "clamd")
	cert, key := p.issue(t, "mx1", time.Now(), time.Hour, "dns:mx1.example.org")
	t.Run("openssl s_client", func(t *testing.T) {
		if _, err := exec.LookPath("openssl"); err != nil {
			testenv.MissingPeer(t, "openssl", "openssl")
		}
		cmd := exec.Command("openssl", "s_client", "-connect", addr, "-cert", cert, "-key", key, "-CAfile", p.caFile,
			"-verify_return_error", "-quiet", "-ign_eof")
		cmd.Stdin = strings.NewReader("nPING\n")
		out, err := cmd.Output()
		if err != nil || string(out) != "PONG\n" {
			t.Fatalf("openssl s_client nPING: %q, %v", out, err)
		}
		cmd = exec.Command("openssl", "s_client", "-connect", addr, "-CAfile", p.caFile, "-quiet", "-ign_eof")
		cmd.Stdin = strings.NewReader("nPING\n")
		if out, _ := cmd.Output(); strings.Contains(string(out), "PONG") {
			t.Fatalf("openssl s_client without a certificate was served: %q", out)
		}
	})
	t.Run("python ssl", func(t *testing.T) {
		py, err := exec.LookPath("python3")
		if err != nil {
			testenv.MissingPeer(t, "python3", "python3")
		}
		host, port, _ := net.SplitHostPort(addr)
		script := `
import socket, ssl, struct, sys
host, port, ca, cert, key, data = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6].encode()
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
with socket.create_connection((host, port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"zINSTREAM\0" + struct.pack(">I", len(data)) + data + struct.pack(">I", 0))
        reply = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            reply += b
        print(s.version(), reply.decode())
`
		out, err := exec.Command(py, "-c", script, host, port, p.caFile, cert, key, testenv.EICAR).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "TLSv1.3 stream: Eicar-Test-Signature") || !strings.Contains(string(out), "FOUND") {
			t.Fatalf("python ssl INSTREAM EICAR: %q, %v", out, err)
		}
	})
	must(t, gw.Log.WaitFor("identity=dns:mx1.example.org", 5*time.Second))
}
