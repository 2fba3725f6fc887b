package icap_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/testenv"
	"clamgate/internal/tlsid"
)

// TestSquidICAPS: squid-openssl, an icaps:// client with its own
// certificate, through a TLS ICAP listener that admits it by that
// certificate: a clean download passes, EICAR is blocked, and the audit
// log names squid's certificate. Debian's GnuTLS squid ignores tls-cert=
// on an ICAP service; squid-openssl presents it.
func TestSquidICAPS(t *testing.T) {
	if out, err := exec.Command("squid", "-v").Output(); err != nil || !strings.Contains(string(out), "--with-openssl") {
		testenv.MissingPeer(t, "squid built with OpenSSL (Debian's squid-openssl; squid is built with GnuTLS and cannot present tls-cert=)",
			"scripts/install-deps.sh --test (apt-get install squid-openssl, which replaces squid)")
	}
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	ca, caPair, err := tlsid.NewCA("clamgate test CA", time.Hour)
	must(t, err)
	caFile, _, err := caPair.Write(dir, "ca")
	must(t, err)
	issue := func(name string, names ...string) (string, string) {
		pair, err := ca.Issue(names, time.Now(), time.Hour)
		must(t, err)
		cert, key, err := pair.Write(dir, name)
		must(t, err)
		must(t, os.Chmod(key, 0o644)) // squid may read it as its own user
		return cert, key
	}
	srvCert, srvKey := issue("gateway", "dns:localhost")
	proxyCert, proxyKey := issue("proxy", "dns:proxy7.example.org")
	addr := testenv.FreePort(t)
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "10s"
stream_max_length = "10M"

[server]
read_timeout = "5s"

[[listener]]
address = "tls:%s"
protocol = "icap"
policy = "proxies"
tls_cert = %q
tls_key = %q
tls_client_ca = %q

[policy.proxies]
tls_identities = ["dns:proxy7.example.org"]
`, c.Socket, addr, srvCert, srvKey, caFile)
	cfg, err := config.Parse("test.toml", []byte(src))
	must(t, err)
	gw := testenv.StartGateway(t, cfg)
	_, port, _ := strings.Cut(addr, ":")
	sq := startSquidService(t, fmt.Sprintf("icaps://localhost:%s/avscan tls-cert=%s tls-key=%s tls-cafile=%s", port, proxyCert, proxyKey, caFile))
	objects := map[string][]byte{
		"/clean.txt": []byte(strings.Repeat("a small clean page\n", 500)),
		"/eicar.com": []byte(testenv.EICAR),
	}
	base := origin(t, objects)
	if code, body := sq.get(t, base+"/clean.txt"); code != 200 || !bytes.Equal(body, objects["/clean.txt"]) {
		t.Errorf("clean: status %d, %d bytes", code, len(body))
	}
	if code, body := sq.get(t, base+"/eicar.com"); code != 403 || !bytes.Contains(body, []byte(testenv.EicarThreat)) {
		t.Errorf("EICAR: status %d:\n%s", code, body)
	}
	must(t, gw.Log.WaitFor("client=proxies protocol=icap", 5*time.Second))
	must(t, gw.Log.WaitFor("identity=dns:proxy7.example.org", 5*time.Second))
	if strings.Contains(gw.Log.String(), `reason=no_certificate`) {
		t.Errorf("squid connected without its certificate")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
