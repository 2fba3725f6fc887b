package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/config"
	"clamgate/internal/testenv"
)

// TestTLSHelperAndScan: `clamgate tls` issues a CA, the gateway's and a
// client's certificates; a gateway serves a tls: listener with them, and
// `clamgate scan --gateway tls:` scans through it with the client's;
// `config check` accepts the files and reports one about to expire.
func TestTLSHelperAndScan(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	pki := filepath.Join(dir, "tls")
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := Main(context.Background(), args, &out, &out)
		return code, out.String()
	}
	for _, args := range [][]string{
		{"tls", "new-ca", "--dir", pki},
		{"tls", "issue", "--dir", pki, "--id", "dns:localhost", "--id", "ip:127.0.0.1", "--name", "gateway"},
		{"tls", "issue", "--dir", pki, "--id", "dns:mx1.example.org"},
		{"tls", "issue", "--dir", pki, "--id", "cn:soon", "--days", "5"},
	} {
		if code, out := run(args...); code != 0 || !strings.HasPrefix(out, "wrote ") {
			t.Fatalf("%v: %d %s", args, code, out)
		}
	}
	if code, out := run("tls", "new-ca", "--dir", pki); code == 0 {
		t.Errorf("a second new-ca over the first: %s", out)
	}
	addr := testenv.FreePort(t)
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
[[listener]]
address = "tls:%s"
policy = "mx"
tls_cert = "%[3]s/gateway.crt"
tls_key = "%[3]s/gateway.key"
tls_client_ca = "%[3]s/ca.crt"
[policy.mx]
tls_identities = ["dns:mx1.example.org"]
`, clamd.Socket, addr, pki)
	cfgFile := filepath.Join(dir, "clamgate.toml")
	must(t, os.WriteFile(cfgFile, []byte(src), 0o644))
	cfg, err := config.Parse("tls.toml", []byte(src))
	must(t, err)
	testenv.StartGateway(t, cfg)
	eicar := filepath.Join(dir, "eicar.com")
	must(t, os.WriteFile(eicar, []byte(testenv.EICAR), 0o644))
	scan := []string{"scan", "--address", "tls:" + addr, "--ca", pki + "/ca.crt"}
	code, out := run(append(scan, "--cert", pki+"/mx1.example.org.crt", "--key", pki+"/mx1.example.org.key", eicar)...)
	if code != 1 || out != eicar+": "+testenv.EicarThreat+" FOUND\n" {
		t.Errorf("scan over tls: %d %q", code, out)
	}
	if code, out := run(append(scan, "--cert", pki+"/soon.crt", "--key", pki+"/soon.key", eicar)...); code != 2 || strings.Contains(out, "FOUND") {
		t.Errorf("scan with a certificate of no policy: %d %q", code, out)
	}
	if code, out := run("config", "check", "--config", cfgFile); code != 0 {
		t.Errorf("config check: %d %s", code, out)
	}
	must(t, os.Rename(pki+"/soon.crt", pki+"/gateway.crt"))
	must(t, os.Rename(pki+"/soon.key", pki+"/gateway.key"))
	if code, out := run("config", "check", "--config", cfgFile); code != exitConfig || !strings.Contains(out, "expires in 4 days") {
		t.Errorf("config check of a certificate expiring in 5 days: %d %s", code, out)
	}
}
