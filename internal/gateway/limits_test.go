package gateway_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/testenv"
)

// TestLimitsNeverOK sends objects clamd cannot scan whole (nesting past
// MaxRecursion, more than MaxFiles files, more than MaxScanSize bytes, each
// hiding EICAR past the limit) through ClamAV's own clamdscan, in each of
// its modes, to a gateway in front of a clamd with AlertExceedsMax yes,
// under each on_limits. Without AlertExceedsMax clamd answers OK for them
// (checked first: the fail-open the gateway's engines no longer have).
func TestLimitsNeverOK(t *testing.T) {
	t.Parallel()
	clamdscan := needProgram(t, "clamdscan", "clamdscan", "/usr/bin/clamdscan")
	plain := testenv.StartClamd(t, testenv.ClamdOptions{Extra: []string{"MaxFiles 50", "MaxScanSize 1M"}})
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.LimitsClamd})
	dir := testenv.TempDir(t)
	objects := testenv.LimitObjects()
	for _, o := range objects {
		must(t, os.WriteFile(filepath.Join(dir, fileName(o.Name)), o.Data, 0o644))
	}
	confDir := testenv.TempDir(t)
	scan := func(t *testing.T, sock, file string, args ...string) runResult {
		t.Helper()
		conf := clamdscanConf(t, confDir, fmt.Sprintf("c%d.conf", len(sock)+len(args)), "LocalSocket "+sock)
		return runClient(t, asSelf, clamdscan, append([]string{"--config-file=" + conf, "--no-summary"}, append(args, file)...)...)
	}
	for _, o := range objects {
		file := filepath.Join(dir, fileName(o.Name))
		got := scan(t, plain.Socket, file, "--stream")
		if o.Over && (got.Code != 0 || !strings.HasSuffix(got.Stdout, ": OK\n")) {
			t.Errorf("%s: clamd without AlertExceedsMax: %s (want OK: did clamd change?)", o.Name, got)
		}
	}
	for _, policy := range []string{"block", "error", "pass"} {
		gw := startClientGateway(t, clamd, fmt.Sprintf("roots = [%q]\non_limits = %q", dir, policy))
		for _, o := range objects {
			for _, mode := range [][]string{{"--stream"}, {"--fdpass"}, nil} {
				t.Run(fmt.Sprintf("%s/%s/%v", policy, o.Name, mode), func(t *testing.T) {
					file := filepath.Join(dir, fileName(o.Name))
					got := scan(t, gw.Unix, file, mode...)
					checkLimitsReply(t, policy, o, file, got)
				})
			}
		}
	}
}

// checkLimitsReply: EICAR within the limits is FOUND whatever the policy;
// past them, block is a FOUND naming the limit (exit 1), error an ERROR
// (exit 2), pass an OK (exit 0, the administrator's explicit choice).
func checkLimitsReply(t *testing.T, policy string, o testenv.LimitObject, file string, got runResult) {
	t.Helper()
	want, code := file+": "+testenv.EicarThreat+" FOUND\n", 1
	if o.Over {
		switch policy {
		case "block":
			want = "Heuristics.Limits.Exceeded."
		case "error":
			want, code = "Heuristics.Limits.Exceeded.", 2
		case "pass":
			want, code = file+": OK\n", 0
		}
	}
	okEnd := !o.Over || policy != "error" || strings.HasSuffix(strings.TrimSpace(got.Stdout), " ERROR")
	if got.Code != code || !strings.Contains(got.Stdout, want) || !okEnd {
		t.Errorf("want exit %d and %q\ngot %s", code, want, got)
	}
	if o.Over && policy != "pass" && strings.Contains(got.Stdout, ": OK") {
		t.Errorf("OK for an object not scanned whole: %s", got)
	}
}

func fileName(name string) string { return strings.ReplaceAll(name, " ", "_") + ".zip" }
