package milter_test

import (
	"path/filepath"
	"testing"

	"clamgate/internal/testenv"
)

// TestMiltertest drives the gateway's milter with libmilter's own test
// MTA, one configuration per action, against a real clamd.
func TestMiltertest(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	backend := "unix:" + clamd.Socket
	down := "unix:" + filepath.Join(testenv.TempDir(t), "no-clamd.sock")
	const rejected = "5.7.1 Message rejected: virus found: " + testenv.EicarThreat
	const unscanned = "4.7.1 Message could not be scanned for viruses, try again later"
	type msg struct{ content, expect, code, text, status, count, filler string }
	tests := []struct {
		name    string
		backend string
		milter  string
		msgs    []msg
	}{
		{"defaults", backend, ``, []msg{
			{content: "clean", expect: "accept"},
			{content: "eicar", expect: "reject", code: "550", text: rejected},
			{content: "clean", expect: "accept", count: "3"},
			{content: "eicar", expect: "reject", code: "550", text: rejected, count: "2"},
			{content: "clean", expect: "accept", filler: "3000000"},
			{content: "eicar", expect: "reject", code: "550", text: rejected, filler: "3000000"},
		}},
		{"reject message", backend, `reject_message = "Virus %v, 100% refused"`, []msg{
			{content: "eicar", expect: "reject", code: "550", text: "5.7.1 Virus " + testenv.EicarThreat + ", 100%% refused"},
		}},
		{"discard", backend, `on_infected = "discard"`, []msg{
			{content: "eicar", expect: "discard"},
			{content: "clean", expect: "accept"},
		}},
		{"quarantine", backend, `on_infected = "quarantine"`, []msg{
			{content: "eicar", expect: "quarantine"},
			{content: "clean", expect: "accept"},
		}},
		{"accept with headers", backend, "on_infected = \"pass\"\nadd_header = true", []msg{
			{content: "eicar", expect: "accept", status: "Infected (" + testenv.EicarThreat + ")"},
			{content: "clean", expect: "accept", status: "Clean"},
		}},
		{"quarantine with headers", backend, "on_infected = \"quarantine\"\nadd_header = true", []msg{
			{content: "eicar", expect: "quarantine", status: "Infected (" + testenv.EicarThreat + ")"},
		}},
		{"over limit rejected", backend, `max_size = "300"`, []msg{
			{content: "eicar", expect: "reject", code: "552", text: "5.3.4 Message too big to be scanned for viruses"},
		}},
		{"over limit accepted", backend, "max_size = \"300\"\nover_limit = \"pass\"\nadd_header = true", []msg{
			{content: "eicar", expect: "accept", status: "Not scanned (message too big)"},
		}},
		{"over limit tempfail", backend, "max_size = \"300\"\nover_limit = \"tempfail\"", []msg{
			{content: "eicar", expect: "tempfail", code: "452", text: "4.3.1 Message too big to be scanned for viruses now"},
		}},
		{"clamd down", down, ``, []msg{
			{content: "clean", expect: "tempfail", code: "451", text: unscanned},
			{content: "eicar", expect: "tempfail", code: "451", text: unscanned, count: "2"},
		}},
		{"clamd down, quarantine", down, `on_failure = "quarantine"`, []msg{
			{content: "clean", expect: "quarantine"},
		}},
		{"clamd down, reject", down, `on_failure = "reject"`, []msg{
			{content: "clean", expect: "reject", code: "550", text: "5.7.1 Message could not be scanned for viruses"},
		}},
		{"clamd down, accept", down, "on_failure = \"pass\"\nadd_header = true", []msg{
			{content: "clean", expect: "accept", status: "Not scanned (scan failed)"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sock := startMilter(t, tc.backend, tc.milter)
			for _, m := range tc.msgs {
				miltertest(t, "scan.lua", map[string]string{
					"socket": "unix:" + sock, "content": m.content, "expect": m.expect,
					"reply_code": m.code, "reply_text": m.text, "status": m.status, "count": m.count, "filler": m.filler,
				})
			}
		})
	}
}
