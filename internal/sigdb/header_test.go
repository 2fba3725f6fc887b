package sigdb_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"clamgate/internal/sigdb"
)

// header builds a container header the way sigtool writes it: fields
// joined by ':' after the magic, padded with spaces to 512 bytes.
func header(fields ...string) []byte {
	h := "ClamAV-VDB:" + strings.Join(fields, ":")
	return []byte(h + strings.Repeat(" ", max(0, sigdb.HeaderSize-len(h))))
}

const md5 = "662932e452f6638e8af73c32c7b0f4cd"

// TestParseHeaderSigtool reads a header written by ClamAV's own sigtool
// (sigtool --unsigned --build=daily.cud --cvd-version=27100, ClamAV 1.4.6),
// which clamd 1.4.6 reported as "ClamAV 1.4.6/27100/Wed Nov 25 18:38:12 2026".
func TestParseHeaderSigtool(t *testing.T) {
	b, err := os.ReadFile("testdata/daily.cud")
	if err != nil {
		t.Fatal(err)
	}
	f, err := sigdb.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sigdb.File{BuildTime: time.Unix(1795631892, 0), Version: 27100, Signatures: 3, Level: 216, Builder: "clamgate"}
	if !sameFile(f, want) {
		t.Errorf("got %+v\nwant %+v", f, want)
	}
}

func TestParseHeader(t *testing.T) {
	est := time.FixedZone("", -5*3600)
	for _, tc := range []struct {
		name string
		in   []byte
		want sigdb.File
	}{
		{"unix time preferred", header("23 Nov 2026 09-10 -0500", "27100", "2070000", "90", md5, "dsig", "skynet", "1795529400"),
			sigdb.File{BuildTime: time.Unix(1795529400, 0), Version: 27100, Signatures: 2070000, Level: 90, Builder: "skynet"}},
		{"old format without unix time", header("23 Nov 2026 09-10 -0500", "62", "6647427", "90", md5, "dsig", "sigmgr"),
			sigdb.File{BuildTime: time.Date(2026, 11, 23, 9, 10, 0, 0, est), Version: 62, Signatures: 6647427, Level: 90, Builder: "sigmgr"}},
		{"empty unix time", header("23 Nov 2026 09-10 -0500", "62", "1", "90", md5, "dsig", "sigmgr", ""),
			sigdb.File{BuildTime: time.Date(2026, 11, 23, 9, 10, 0, 0, est), Version: 62, Signatures: 1, Level: 90, Builder: "sigmgr"}},
		{"unparsable human time ignored when unix time present", header("sometime", "1", "2", "3", md5, "", "", "1795529400"),
			sigdb.File{BuildTime: time.Unix(1795529400, 0), Version: 1, Signatures: 2, Level: 3}},
		{"NUL padding", []byte(strings.ReplaceAll(string(header("x", "5", "6", "7", md5, "d", "b", "1795529400")), " ", "\x00")),
			sigdb.File{BuildTime: time.Unix(1795529400, 0), Version: 5, Signatures: 6, Level: 7, Builder: "b"}},
		{"body after the header ignored", append(header("x", "5", "6", "7", md5, "d", "b", "1795529400"), "\x1f\x8b:9:9:9"...),
			sigdb.File{BuildTime: time.Unix(1795529400, 0), Version: 5, Signatures: 6, Level: 7, Builder: "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := sigdb.ParseHeader(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !sameFile(f, tc.want) {
				t.Errorf("got %+v\nwant %+v", f, tc.want)
			}
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated header: 0 bytes, want 512"},
		{"truncated", header("x", "1", "2", "3", md5, "d", "b", "1")[:100], "truncated header: 100 bytes, want 512"},
		{"garbage", []byte(strings.Repeat("\x1f\x8b", 256)), `not a ClamAV database: header does not start with "ClamAV-VDB:"`},
		{"gzip without header", append([]byte("\x1f\x8b\x08"), make([]byte, 600)...), `not a ClamAV database: header does not start with "ClamAV-VDB:"`},
		{"too few fields", header("x", "1", "2", "3"), "header has 5 fields, want at least 8"},
		{"version", header("x", "27l00", "2", "3", md5, "d", "b", "1"), `version "27l00" is not a number`},
		{"negative version", header("x", "-1", "2", "3", md5, "d", "b", "1"), `version "-1" is not a number`},
		{"empty version", header("x", "", "2", "3", md5, "d", "b", "1"), `version "" is not a number`},
		{"signatures", header("x", "1", "many", "3", md5, "d", "b", "1"), `signature count "many" is not a number`},
		{"level", header("x", "1", "2", " 3", md5, "d", "b", "1"), `functionality level " 3" is not a number`},
		{"huge", header("x", "99999999999", "2", "3", md5, "d", "b", "1"), `version "99999999999" is out of range`},
		{"unix time", header("x", "1", "2", "3", md5, "d", "b", "17955294OO"), `unix time "17955294OO" is not a number`},
		{"colon in the human time", header("23 Nov 2026 09:10 -0500", "1", "2", "3", md5, "d", "b"), `version "10 -0500" is not a number`},
		{"bad human time", header("yesterday", "1", "2", "3", md5, "d", "b"), `build time "yesterday": want the form "02 Jan 2006 15-04 -0700"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sigdb.ParseHeader(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func sameFile(a, b sigdb.File) bool {
	at, bt := a.BuildTime, b.BuildTime
	a.BuildTime, b.BuildTime = time.Time{}, time.Time{}
	return a == b && at.Equal(bt)
}

// FuzzParseHeader: whatever the bytes, ParseHeader returns a description
// or an error, never panics, never reads past the header and never
// invents a negative number.
func FuzzParseHeader(f *testing.F) {
	if b, err := os.ReadFile("testdata/daily.cud"); err == nil {
		f.Add(b)
	}
	f.Add(header("23 Nov 2026 09-10 -0500", "27100", "2070000", "90", md5, "dsig", "skynet", "1795529400"))
	f.Add(header("23 Nov 2026 09-10 -0500", "62", "6647427", "90", md5, "dsig", "sigmgr"))
	f.Add(header("x", "1", "2"))
	f.Add([]byte("ClamAV-VDB:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := sigdb.ParseHeader(b)
		if err != nil {
			return
		}
		if len(b) < sigdb.HeaderSize {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if got.Version < 0 || got.Signatures < 0 || got.Level < 0 {
			t.Fatalf("negative field: %+v", got)
		}
		again, err := sigdb.ParseHeader(append(b[:sigdb.HeaderSize:sigdb.HeaderSize], "trailing body"...))
		if err != nil || !sameFile(got, again) {
			t.Fatalf("the body changed the header: %+v %v", again, err)
		}
	})
}
