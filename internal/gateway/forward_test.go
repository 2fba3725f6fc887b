package gateway_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// centralGateway starts a gateway in front of c with a TLS listener that
// serves policy edges to dns:edge*.example.org certificates.
func centralGateway(t *testing.T, c *testenv.Clamd, p *pki) (addr string, gw *testenv.Gateway) {
	t.Helper()
	cert, key := p.issue(t, "central", time.Now(), time.Hour, "dns:localhost", "ip:127.0.0.1")
	addr = testenv.FreePort(t)
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "20s"
stream_max_length = "10M"

[server]
read_timeout = "5s"

[[listener]]
address = "tls:%s"
policy = "edges"
tls_cert = %q
tls_key = %q
tls_client_ca = %q

[policy.edges]
tls_identities = ["dns:edge1.example.org"]
`, c.Socket, addr, cert, key, p.caFile)
	return addr, testenv.StartGateway(t, mustParse(t, src))
}

// edgeGateway starts a gateway whose backends are central gateways over
// TLS, with a unix listener for path scans beneath root (amavis' shape).
func edgeGateway(t *testing.T, p *pki, root string, backends ...string) (sock string, gw *testenv.Gateway) {
	t.Helper()
	return edgeGatewayFor(t, p, root, "dns:edge1.example.org", backends...)
}

// edgeGatewayFor is edgeGateway with a certificate for identity.
func edgeGatewayFor(t testing.TB, p *pki, root, identity string, backends ...string) (sock string, gw *testenv.Gateway) {
	t.Helper()
	cert, key := p.issue(t, "edge1", time.Now(), time.Hour, identity)
	sock = filepath.Join(testenv.TempDir(t), "edge.sock")
	src := fmt.Sprintf(`
[backend]
address = ["%s"]
tls_cert = %q
tls_key = %q
tls_ca = %q
timeout = "20s"
stream_max_length = "10M"
health_interval = "200ms"

[server]
read_timeout = "5s"

[[listener]]
address = "unix:%s"
policy = "amavis"
mode = "0666"

[policy.amavis]
roots = [%q]
`, strings.Join(backends, `", "`), cert, key, p.caFile, sock, root)
	return sock, testenv.StartGateway(t, mustParse(t, src))
}

// TestTLSForwardingEdgeToCentral: a gateway forwarding to a central one
// over TLS answers amavis-style path scans (CONTSCAN, MULTISCAN, SCAN of
// files it opens beneath its root and streams), FILDES and INSTREAM with
// the same bytes as a direct clamd; the central's audit log names the
// edge by its certificate; a dead central among the backends is taken out
// by the health checks and the scans go to the live one.
func TestTLSForwardingEdgeToCentral(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	p := newPKI(t)
	tr := makeTree(t)
	centralAddr, central := centralGateway(t, c, p)
	dead := testenv.FreePort(t)
	edge, edgeGW := edgeGateway(t, p, tr.Root, "tls:"+dead, "tls:"+centralAddr)
	must(t, edgeGW.Log.WaitFor(`not answering yet" backend=tls:`+dead, 10*time.Second))
	eicar, err := os.Open(tr.path("eicar.com"))
	must(t, err)
	defer eicar.Close()
	for _, tc := range []struct {
		name      string
		steps     []step
		sortLines bool
	}{
		{"CONTSCAN root", []step{raw("zCONTSCAN " + tr.Root + "\x00")}, false},
		{"CONTSCAN dir", []step{raw("nCONTSCAN " + tr.path("dir") + "\n")}, false},
		{"MULTISCAN dir", []step{raw("zMULTISCAN " + tr.path("dir") + "\x00")}, true},
		{"SCAN eicar", []step{raw("zSCAN " + tr.path("eicar.com") + "\x00")}, false},
		{"SCAN clam.exe", []step{raw("zSCAN " + tr.path("dir/clam.exe") + "\x00")}, false},
		{"SCAN marked", []step{raw("zSCAN " + tr.path("marked.com") + "\x00")}, false},
		{"SCAN missing", []step{raw("zSCAN " + tr.path("nope.txt") + "\x00")}, false},
		{"INSTREAM EICAR", []step{{Data: instream("z", []byte(testenv.EICAR))}}, false},
		{"INSTREAM clean", []step{{Data: instream("n", []byte("clean\n"))}}, false},
		{"FILDES EICAR", []step{raw("zFILDES\x00"), {Data: []byte{0}, FD: eicar}}, false},
		{"PING", []step{raw("zPING\x00")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := normalize(exchange(t, "unix", c.Socket, tc.steps...), tc.sortLines)
			got := normalize(exchange(t, "unix", edge, tc.steps...), tc.sortLines)
			if got != direct {
				t.Errorf("edge -> central:\n %q\nclamd:\n %q", got, direct)
			}
		})
	}
	must(t, central.Log.WaitFor("client=edges protocol=clamd object=stream verdict=infected", 5*time.Second))
	must(t, central.Log.WaitFor("identity=dns:edge1.example.org", 5*time.Second))
}
