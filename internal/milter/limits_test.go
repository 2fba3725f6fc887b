package milter_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/testenv"
)

// TestScanLimits sends mail carrying objects clamd cannot scan whole with
// libmilter's miltertest: under on_limits block the MTA is told to reject
// naming the limit, under error it gets the on_failure answer (tempfail),
// under pass the message is accepted, as configured. In a mail even EICAR
// in 16 nested zips is past MaxRecursion: the MIME message is a level too.
func TestScanLimits(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.LimitsClamd})
	dir := testenv.TempDir(t)
	// The limit each object breaks.
	limit := map[string]string{"nested 16": "MaxRecursion", "nested 17": "MaxRecursion", "nested 18": "MaxRecursion",
		"nested 20": "MaxRecursion", "over MaxFiles": "MaxFiles", "over MaxScanSize": "MaxScanSize"}
	for _, policy := range []string{"block", "error", "pass"} {
		sock := startMilterPolicy(t, "unix:"+clamd.Socket, fmt.Sprintf("on_limits = %q", policy), "")
		for _, o := range testenv.LimitObjects() {
			t.Run(policy+"/"+o.Name, func(t *testing.T) {
				file := filepath.Join(dir, strings.ReplaceAll(o.Name, " ", "_")+".b64")
				if err := os.WriteFile(file, base64Lines(o.Data), 0o644); err != nil {
					t.Fatal(err)
				}
				vars := map[string]string{"socket": "unix:" + sock, "content": "clean", "attachment": file}
				switch policy {
				case "block":
					vars["expect"], vars["reply_code"] = "reject", "550"
					vars["reply_text"] = "5.7.1 Message rejected: virus found: Heuristics.Limits.Exceeded." + limit[o.Name]
				case "error":
					vars["expect"], vars["reply_code"] = "tempfail", "451"
					vars["reply_text"] = "4.7.1 Message could not be scanned for viruses, try again later"
				case "pass":
					vars["expect"] = "accept"
				}
				miltertest(t, "scan.lua", vars)
			})
		}
	}
}

func base64Lines(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(enc) > 76 {
		out.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc)
	return []byte(out.String())
}
