package gateway_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/gateway"
	"clamgate/internal/testenv"
	"clamgate/internal/tlsid"
)

// TestTLSRotationUnderLoad: while clients scan without pause over fresh
// TLS connections, the server certificate and the client CA are replaced
// twice (moving every party from one CA to another, as a site does), a
// broken certificate is written in between, and a SIGHUP comes: no scan
// fails, a session opened before the first rotation goes on to the end,
// and the broken file is refused with the old material kept.
func TestTLSRotationUnderLoad(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	ca1, ca1Pair, err := tlsid.NewCA("CA one", 24*time.Hour)
	must(t, err)
	ca2, ca2Pair, err := tlsid.NewCA("CA two", 24*time.Hour)
	must(t, err)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p+".tmp", data, 0o600))
		must(t, os.Rename(p+".tmp", p))
		return p
	}
	caFile := write("clients-ca.crt", ca1Pair.CertPEM)
	server := func(ca *tlsid.Issuer) {
		pair, err := ca.Issue([]string{"dns:localhost"}, time.Now(), time.Hour)
		must(t, err)
		_, _, err = pair.Write(dir, "server")
		must(t, err)
	}
	server(ca1)
	addr := testenv.FreePort(t)
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "20s"

[server]
read_timeout = "10s"

[[listener]]
address = "tls:%s"
policy = "mx"
tls_cert = %q
tls_key = %q
tls_client_ca = %q

[policy.mx]
tls_identities = ["dns:mx1.example.org"]
`, c.Socket, addr, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), caFile)
	cfgPath := write("clamgate.toml", []byte(src))
	hup := make(chan os.Signal, 1)
	gw := testenv.StartGateway(t, mustParse(t, src), gateway.ReloadOn(hup, func() (*config.Config, error) { return config.Load(cfgPath) }))

	roots := x509.NewCertPool()
	roots.AddCert(ca1.Cert)
	roots.AddCert(ca2.Cert)
	clientCert := func(ca *tlsid.Issuer) *tls.Certificate {
		pair, err := ca.Issue([]string{"dns:mx1.example.org"}, time.Now(), time.Hour)
		must(t, err)
		kp, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
		must(t, err)
		return &kp
	}
	var current atomic.Pointer[tls.Certificate]
	current.Store(clientCert(ca1))
	clientCfg := &tls.Config{RootCAs: roots, ServerName: "localhost",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return current.Load(), nil }}

	// A session opened now lives through every rotation.
	sess, err := tls.Dial("tcp", addr, clientCfg)
	must(t, err)
	defer sess.Close()
	sr := bufio.NewReader(sess)
	ping := func() {
		t.Helper()
		_ = sess.SetDeadline(time.Now().Add(10 * time.Second))
		_, err := sess.Write([]byte("zPING\x00"))
		must(t, err)
		if line, err := sr.ReadString(0); err != nil || !strings.HasSuffix(line, ": PONG\x00") {
			t.Fatalf("session PING: %q, %v", line, err)
		}
	}
	_, err = sess.Write([]byte("zIDSESSION\x00"))
	must(t, err)
	ping()

	var scans, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := tlsExchange(addr, clientCfg, instream("z", []byte(testenv.EICAR)))
				scans.Add(1)
				if err != nil || !strings.HasSuffix(string(got), " FOUND\x00") {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%q, %v", got, err))
				}
			}
		})
	}
	reloaded := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(gw.Log.String(), "TLS material reloaded") < n {
			if time.Now().After(deadline) {
				t.Fatalf("reload %d never happened", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // scans go on meanwhile
	}
	time.Sleep(500 * time.Millisecond)
	// Round 1: the listener trusts both CAs, then the clients move to CA two.
	write("clients-ca.crt", append(append([]byte{}, ca1Pair.CertPEM...), ca2Pair.CertPEM...))
	reloaded(1)
	current.Store(clientCert(ca2))
	// A broken certificate: refused, the old one kept.
	write("server.crt", []byte("-----BEGIN CERTIFICATE-----\nbroken\n"))
	must(t, gw.Log.WaitFor("TLS files refused: the previous certificate stays in use", 10*time.Second))
	time.Sleep(300 * time.Millisecond)
	// Round 2: the server moves to CA two, the listener trusts CA two only.
	server(ca2)
	reloaded(2)
	write("clients-ca.crt", ca2Pair.CertPEM)
	reloaded(3)
	hup <- os.Interrupt // SIGHUP: re-read, nothing changed
	must(t, gw.Log.WaitFor("configuration reloaded", 10*time.Second))
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	ping()
	if failed.Load() > 0 || scans.Load() < 20 {
		t.Fatalf("%d of %d scans failed during rotation; first: %v", failed.Load(), scans.Load(), firstErr.Load())
	}
	t.Logf("%d scans during two rotations, 0 failed", scans.Load())
	// The clients' CA one certificates are no longer accepted.
	old := clientCfg.Clone()
	oldCert := clientCert(ca1)
	old.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return oldCert, nil }
	if got, err := tlsExchange(addr, old, []byte("zPING\x00")); err == nil || len(got) > 0 {
		t.Errorf("a certificate of the retired CA was served: %q, %v", got, err)
	}
}
