package icap_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/testenv"
)

// TestScanLimits: objects clamd cannot scan whole never get a 204 or a
// clean 200 from c-icap-client's point of view, under on_limits block and
// error; pass lets them through, as configured. c-icap-client does not
// print a 500, so the error case is read with the raw protocol.
func TestScanLimits(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.LimitsClamd})
	dir := t.TempDir()
	for _, policy := range []string{"block", "error", "pass"} {
		host, port := icapGateway(t, c, fmt.Sprintf("on_limits = %q\n", policy))
		for _, o := range testenv.LimitObjects() {
			file := filepath.Join(dir, strings.ReplaceAll(o.Name, " ", "_"))
			if err := os.WriteFile(file, o.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, opts := range [][]string{nil, {"-no204"}} {
				t.Run(fmt.Sprintf("%s/%s/%v", policy, o.Name, opts), func(t *testing.T) {
					if o.Over && policy == "error" {
						for _, allow204 := range []bool{true, false} {
							got := rawICAP(t, net.JoinHostPort(host, port), respmod(o.Data, -1, allow204))
							if !strings.HasPrefix(got, "ICAP/1.0 500 ") {
								t.Errorf("allow 204 %v: want ICAP 500, got:\n%s", allow204, got)
							}
						}
						return
					}
					r := cicap(t, host, port, file, opts...)
					blocked := r.status() == "ICAP/1.0 200 OK" && bytes.Contains(r.body, []byte("Virus found"))
					passed := r.status() == "ICAP/1.0 204 No Content" || (r.status() == "ICAP/1.0 200 OK" && bytes.Equal(r.body, o.Data))
					switch {
					case !o.Over && !(blocked && strings.Contains(r.stdout, testenv.EicarThreat)):
						t.Errorf("EICAR within the limits not blocked: %s", r.stdout)
					case o.Over && policy == "block" && !(blocked && strings.Contains(r.stdout, "Heuristics.Limits.Exceeded.")):
						t.Errorf("not blocked naming the limit: %s", r.stdout)
					case o.Over && policy == "pass" && !passed:
						t.Errorf("on_limits = pass did not pass: %s", r.stdout)
					}
				})
			}
		}
	}
}
