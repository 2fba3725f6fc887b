package scan

import "testing"

func TestParseReply(t *testing.T) {
	tests := []struct {
		reply   string
		verdict Verdict
		threat  string
	}{
		{"stream: OK", Clean, ""},
		{"fd[12]: OK", Clean, ""},
		{"stream: Eicar-Test-Signature FOUND", Infected, "Eicar-Test-Signature"},
		{"/a: b: c.txt: Win.Test FOUND", Infected, "Win.Test"},
		{"/x: A FOUND\n/x: B FOUND", Infected, "A"},
		{"INSTREAM size limit exceeded. ERROR", Failed, ""},
		{"fd[12]: Not a regular file ERROR", Failed, ""},
		{"/d: Not supported file type ERROR\n/d: OK", Clean, ""},
		{"PONG", Failed, ""},
		{"", Failed, ""},
		{"stream: OK ERROR", Failed, ""},
	}
	for _, tc := range tests {
		got := ParseReply(tc.reply)
		if got.Verdict != tc.verdict || got.Threat != tc.threat {
			t.Errorf("%q: %v %q, want %v %q", tc.reply, got.Verdict, got.Threat, tc.verdict, tc.threat)
		}
	}
}
