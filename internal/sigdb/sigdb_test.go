package sigdb_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"clamgate/internal/sigdb"
	"clamgate/internal/testenv"
)

var t0 = time.Date(2026, 11, 23, 14, 10, 0, 0, time.UTC)

// container writes a .cvd/.cld file: a header with the given fields and a
// small gzip body, as freshclam leaves them (Load reads only the header).
func container(t *testing.T, path string, version, sigs int, built time.Time) {
	t.Helper()
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zw.Write([]byte("daily.ndb\x00 some tar-ish bytes"))
	zw.Close()
	h := header(built.Format("02 Jan 2006 15-04 -0700"), fmt.Sprint(version), fmt.Sprint(sigs), "90", md5, "dsig", "skynet", fmt.Sprint(built.Unix()))
	write(t, path, string(h)+body.String(), t0)
}

func write(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// freshclamDir is a database directory as freshclam and an admin leave it,
// with the clutter Load must ignore.
func freshclamDir(t *testing.T) string {
	dir := t.TempDir()
	container(t, filepath.Join(dir, "main.cvd"), 62, 6647427, t0.Add(-400*24*time.Hour))
	container(t, filepath.Join(dir, "daily.cld"), 27100, 2070000, t0)
	container(t, filepath.Join(dir, "bytecode.cvd"), 335, 86, t0.Add(-30*24*time.Hour))
	write(t, filepath.Join(dir, "local.hdb"), "# local hashes\n\naa15bcf478d165efd2065190eb473bcb:544:Local-1\r\nbb15bcf478d165efd2065190eb473bcb:544:Local-2", t0.Add(-time.Hour))
	write(t, filepath.Join(dir, "Local.NDB"), "Local-Body:0:*:414243\n", t0.Add(-time.Hour))
	write(t, filepath.Join(dir, "whitelist.ign2"), "Eicar-Test-Signature\n", t0.Add(-2*time.Hour))
	write(t, filepath.Join(dir, "rules.yar"), "rule one { condition: true }\nprivate rule two\n{ condition: false }\n// rule three\nrules_are_not_rules\n", t0.Add(-2*time.Hour))
	write(t, filepath.Join(dir, "check.cbc"), "ClamBCafhm...", t0.Add(-2*time.Hour))
	for _, clutter := range []string{"freshclam.dat", "mirrors.dat", "daily.info", "local.cfg", "daily.cld.tmp", ".daily.cld.swp", "notes.txt", "tmp.4f2a/daily.cvd"} {
		write(t, filepath.Join(dir, clutter), "not a database", t0)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.hdb"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoad(t *testing.T) {
	dir := freshclamDir(t)
	s, err := sigdb.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name, Kind        string
		Version, Sigs, Lv int
		Built             time.Time
	}
	var got []row
	for _, f := range s.Files {
		got = append(got, row{f.Name, f.Kind, f.Version, f.Signatures, f.Level, f.BuildTime.UTC()})
	}
	want := []row{
		{"Local.NDB", "ndb", 0, 1, 0, time.Time{}},
		{"bytecode.cvd", "cvd", 335, 86, 90, t0.Add(-30 * 24 * time.Hour)},
		{"check.cbc", "cbc", 0, 1, 0, time.Time{}},
		{"daily.cld", "cld", 27100, 2070000, 90, t0},
		{"local.hdb", "hdb", 0, 2, 0, time.Time{}},
		{"main.cvd", "cvd", 62, 6647427, 90, t0.Add(-400 * 24 * time.Hour)},
		{"rules.yar", "yar", 0, 2, 0, time.Time{}},
		{"whitelist.ign2", "ign2", 0, 1, 0, time.Time{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files:\n%+v\nwant\n%+v", got, want)
	}
	if s.Signatures != 6647427+2070000+86+1+1+2+2+1 || s.Version != 27100 || !s.BuildTime.Equal(t0) || s.Dir != dir {
		t.Errorf("totals: %d signatures, version %d, built %v, dir %s", s.Signatures, s.Version, s.BuildTime, s.Dir)
	}
	if age := s.Age(t0.Add(25 * time.Hour)); age != 25*time.Hour {
		t.Errorf("age %v", age)
	}
	if f := s.Files[4]; f.Size == 0 || !f.ModTime.Equal(t0.Add(-time.Hour)) || f.IsContainer() || !s.Files[3].IsContainer() {
		t.Errorf("stat fields: %+v", f)
	}
}

func TestLoadVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]int // container name -> version
		version int
		sigs    int
	}{
		{"daily wins over a higher main", map[string]int{"main.cvd": 90000, "daily.cvd": 27100}, 27100, 2},
		{"no daily: highest container", map[string]int{"main.cvd": 62, "bytecode.cvd": 335}, 335, 2},
		{"daily.cud counts as daily", map[string]int{"daily.cud": 7, "main.cvd": 62}, 7, 2},
		{"newer of daily.cvd and daily.cld, counted once", map[string]int{"daily.cvd": 27099, "daily.cld": 27100}, 27100, 1},
		{"older cld beside a newer cvd", map[string]int{"daily.cvd": 27101, "daily.cld": 27100}, 27101, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, v := range tc.files {
				container(t, filepath.Join(dir, name), v, 1, t0)
			}
			s, err := sigdb.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if s.Version != tc.version || s.Signatures != tc.sigs {
				t.Errorf("version %d, %d signatures; want %d, %d", s.Version, s.Signatures, tc.version, tc.sigs)
			}
		})
	}
}

func TestLoadLooseOnly(t *testing.T) {
	dir := testenv.TempDir(t)
	testenv.WriteTestDB(t, dir)
	newest := time.Unix(1795529400, 0)
	os.Chtimes(filepath.Join(dir, "test.hdb"), newest, newest)
	os.Chtimes(filepath.Join(dir, "test.ndb"), newest.Add(-time.Hour), newest.Add(-time.Hour))
	s, err := sigdb.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Files) != 2 || s.Signatures != 3 || s.Version != 0 || !s.BuildTime.Equal(newest) {
		t.Errorf("test database: %+v", s)
	}
	if v := s.VersionString(); v != "" {
		t.Errorf("VersionString without containers: %q", v)
	}
}

func TestLoadEmpty(t *testing.T) {
	s, err := sigdb.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Files) != 0 || s.Signatures != 0 || s.Version != 0 || !s.BuildTime.IsZero() || s.Digest == "" {
		t.Errorf("empty: %+v", s)
	}
	if s.Age(t0) != 0 || s.VersionString() != "" {
		t.Errorf("empty: age %v, version %q", s.Age(t0), s.VersionString())
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := sigdb.Load(filepath.Join(dir, "missing")); err == nil ||
		err.Error() != "sigdb: open "+filepath.Join(dir, "missing")+": no such file or directory" {
		t.Errorf("missing dir: %v", err)
	}
	for _, tc := range []struct{ name, content, want string }{
		{"daily.cvd", "ClamAV-VDB:23 Nov 2026 09-10 -0500:27100:", "truncated header: 41 bytes, want 512"},
		{"daily.cld", "", "truncated header: 0 bytes, want 512"},
		{"main.cvd", strings.Repeat("<html>404</html>", 40), `not a ClamAV database: header does not start with "ClamAV-VDB:"`},
		{"bytecode.cvd", string(header("x", "335", "lots", "90", md5, "d", "b", "1")), `signature count "lots" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.name)
			write(t, path, tc.content, t0)
			_, err := sigdb.Load(dir)
			if want := "sigdb: " + path + ": " + tc.want; err == nil || err.Error() != want {
				t.Errorf("error %v\nwant  %s", err, want)
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "local.hdb"), "x\n", t0)
	os.Chmod(filepath.Join(dir, "local.hdb"), 0)
	if _, err := sigdb.Load(dir); err == nil || !strings.Contains(err.Error(), "local.hdb") {
		t.Errorf("unreadable file: %v", err)
	}
}

// TestDigest: the digest is what a watcher compares to decide whether the
// database changed, so it must move with every change freshclam or an
// admin makes, and only then.
func TestDigest(t *testing.T) {
	dir := freshclamDir(t)
	digest := func() string {
		t.Helper()
		s, err := sigdb.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s.Digest
	}
	seen := map[string]string{}
	expectNew := func(step string) {
		t.Helper()
		d := digest()
		if len(d) != 16 || strings.Trim(d, "0123456789abcdef") != "" {
			t.Fatalf("%s: digest %q is not 16 hex digits", step, d)
		}
		if prev, ok := seen[d]; ok {
			t.Errorf("%s: digest %s unchanged since %s", step, d, prev)
		}
		seen[d] = step
	}
	expectNew("start")
	if again := digest(); seen[again] != "start" {
		t.Errorf("digest not stable: %s then %s", again, seen)
	}
	write(t, filepath.Join(dir, "notes.txt"), "clutter changes nothing", t0.Add(time.Hour))
	write(t, filepath.Join(dir, ".hidden.hdb"), "x\n", t0.Add(time.Hour))
	if d := digest(); seen[d] != "start" {
		t.Errorf("clutter changed the digest")
	}
	write(t, filepath.Join(dir, "extra.ndb"), "Extra:0:*:414243\n", t0)
	expectNew("file added")
	write(t, filepath.Join(dir, "extra.ndb"), "Extra:0:*:414244\n", t0.Add(time.Second))
	expectNew("same size, new mtime")
	write(t, filepath.Join(dir, "extra.ndb"), "Extra:0:*:41424344\n", t0.Add(time.Second))
	expectNew("new size, same mtime")
	if err := os.Rename(filepath.Join(dir, "extra.ndb"), filepath.Join(dir, "extra2.ndb")); err != nil {
		t.Fatal(err)
	}
	expectNew("renamed")
	container(t, filepath.Join(dir, "daily.cld"), 27101, 2070000, t0) // same size and mtime: only the version moves
	expectNew("daily updated")
	os.Remove(filepath.Join(dir, "extra2.ndb"))
	expectNew("file removed")
}

func TestVersionString(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "daily.cud"), must(os.ReadFile("testdata/daily.cud")), 0o644); err != nil {
		t.Fatal(err)
	}
	container(t, filepath.Join(dir, "main.cvd"), 62, 1, time.Unix(1795631892+3600, 0)) // newer than daily
	s, err := sigdb.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// clamd 1.4.6 answered VERSION with "ClamAV 1.4.6/27100/Wed Nov 25 18:38:12 2026"
	// for this daily.cud, in a UTC zone; ctime prints local time.
	built := time.Unix(1795631892, 0)
	if got, want := s.VersionString(), "27100/"+built.Local().Format("Mon Jan _2 15:04:05 2006"); got != want {
		t.Errorf("VersionString %q, want %q", got, want)
	}
	if got := built.UTC().Format("Mon Jan _2 15:04:05 2006"); got != "Wed Nov 25 18:38:12 2026" {
		t.Errorf("ctime layout gives %q", got)
	}
	if got := time.Date(2026, 11, 3, 9, 5, 0, 0, time.UTC).Format("Mon Jan _2 15:04:05 2006"); got != "Tue Nov  3 09:05:00 2026" {
		t.Errorf("ctime pads the day with a space: %q", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkLoadSynthetic times Load on the synthetic database of
// bench/gensigs when CLAMGATE_SYNTH_DB names its directory:
//
//	go run ./bench/gensigs -dir /tmp/synth
//	CLAMGATE_SYNTH_DB=/tmp/synth go test -run - -bench LoadSynthetic ./internal/sigdb/
func BenchmarkLoadSynthetic(b *testing.B) {
	dir := os.Getenv("CLAMGATE_SYNTH_DB")
	if dir == "" {
		b.Skip("set CLAMGATE_SYNTH_DB to a directory written by bench/gensigs")
	}
	for b.Loop() {
		s, err := sigdb.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(s.Signatures), "signatures")
	}
}
