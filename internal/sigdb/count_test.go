package sigdb

import (
	"strings"
	"testing"
)

func TestCountLines(t *testing.T) {
	long := strings.Repeat("A", 600<<10) // longer than the reader's buffer
	for _, tc := range []struct {
		name, in string
		yara     bool
		want     int
	}{
		{"empty", "", false, 0},
		{"no final newline", "a\nb", false, 2},
		{"comments and blank lines", "# header\n\n#x\na\n\n\nb\n", false, 2},
		{"CRLF", "a\r\n\r\nb\r\n", false, 2},
		{"long line counts once", long + "\n" + long, false, 2},
		{"long comment", "#" + long + "\na\n", false, 1},
		{"hash inside a long line", long + "#\n#" + long + "\n", false, 1},
		{"yara", "rule a {\n  condition: true\n}\nprivate rule b\n\tglobal rule c {}\n// rule d\nrules e\nrule\n", true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isSig := isSignatureLine
			if tc.yara {
				isSig = isYaraRule
			}
			got, err := countLines(strings.NewReader(tc.in), isSig)
			if err != nil || got != tc.want {
				t.Errorf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestCountingFor(t *testing.T) {
	for kind, want := range map[string]counting{
		"cvd": container, "cld": container, "cud": container,
		"hdb": byLine, "ndb": byLine, "ldb": byLine, "ign2": byLine, "fp": byLine, "sfp": byLine,
		"yara": byYaraRule, "cbc": wholeFile, "cat": uncounted,
		"cfg": notSignatures, "info": notSignatures, "dat": notSignatures, "tmp": notSignatures, "": notSignatures,
	} {
		if got := countingFor(kind); got != want {
			t.Errorf("%q: %d, want %d", kind, got, want)
		}
	}
}
