package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the golden files of clamgate db")

var dbT0 = time.Date(2026, 11, 23, 14, 10, 0, 0, time.UTC)

// writeContainer writes a .cvd/.cld header as sigtool does (the body is
// never read by `clamgate db`).
func writeContainer(t *testing.T, path string, version, sigs int, built time.Time) {
	t.Helper()
	h := fmt.Sprintf("ClamAV-VDB:%s:%d:%d:90:662932e452f6638e8af73c32c7b0f4cd:dsig:skynet:%d",
		built.Format("02 Jan 2006 15-04 -0700"), version, sigs, built.Unix())
	writeAt(t, path, h+strings.Repeat(" ", 512-len(h))+"\x1f\x8b body", built)
}

func writeAt(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(content), 0o644))
	must(t, os.Chtimes(path, mtime, mtime))
}

func goldenDB(t *testing.T) string {
	dir := testenv.TempDir(t)
	writeContainer(t, filepath.Join(dir, "main.cvd"), 62, 6647427, dbT0.Add(-400*24*time.Hour))
	writeContainer(t, filepath.Join(dir, "daily.cld"), 27100, 2070000, dbT0)
	writeContainer(t, filepath.Join(dir, "bytecode.cvd"), 335, 86, dbT0.Add(-30*24*time.Hour))
	writeAt(t, filepath.Join(dir, "local.hdb"), "# ours\naa15bcf478d165efd2065190eb473bcb:544:Local-1\n", dbT0.Add(-50*time.Hour))
	writeAt(t, filepath.Join(dir, "freshclam.dat"), "state", dbT0)
	return dir
}

// fakeClamd answers every VERSION with reply, as clamd does with NUL
// framing, and returns its address.
func fakeClamd(t *testing.T, reply string) string {
	sock := filepath.Join(testenv.TempDir(t), "clamd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cmd, _ := bufio.NewReader(c).ReadString(0)
			if cmd == "zVERSION\x00" {
				c.Write([]byte(reply + "\x00"))
			}
			c.Close()
		}
	}()
	return "unix:" + sock
}

// TestDBGolden: a database a day and two hours old, and a clamd that has
// not reloaded the last daily: both warnings, exit 1, in text and JSON.
func TestDBGolden(t *testing.T) {
	dir := goldenDB(t)
	addr := fakeClamd(t, "ClamAV 1.4.6/27099/Sun Nov 22 14:10:00 2026")
	now := dbT0.Add(26*time.Hour + 5*time.Minute)
	for _, format := range []string{"txt", "json"} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			opt := dbOptions{dir: dir, clamd: addr, explicit: true, maxAge: 24 * time.Hour, timeout: 5 * time.Second, json: format == "json"}
			code := runDB(context.Background(), opt, now, &out)
			got := strings.NewReplacer(dir, "$DB", addr, "$CLAMD").Replace(out.String())
			golden := filepath.Join("testdata", "db."+format+".golden")
			if *updateGolden {
				must(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -run TestDBGolden -update-golden):\n%s", golden, got)
			}
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
		})
	}
	var r map[string]any
	var out bytes.Buffer
	runDB(context.Background(), dbOptions{dir: dir, clamd: addr, explicit: true, maxAge: 24 * time.Hour, json: true}, now, &out)
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r["stale"] != true || r["clamd_behind"] != true {
		t.Errorf("JSON: %v %v", r, err)
	}
}

func TestDBExitCodes(t *testing.T) {
	dir := goldenDB(t)
	fresh := dbT0.Add(time.Hour)
	inSync := fakeClamd(t, "ClamAV 1.4.6/27100/Mon Nov 23 14:10:00 2026")
	ahead := fakeClamd(t, "ClamAV 1.4.6/27101/Mon Nov 23 18:10:00 2026")
	gone := "unix:" + filepath.Join(testenv.TempDir(t), "none.sock")
	for _, tc := range []struct {
		name     string
		opt      dbOptions
		now      time.Time
		code     int
		contains string
	}{
		{"fresh, clamd in sync", dbOptions{dir: dir, clamd: inSync, explicit: true, maxAge: 24 * time.Hour}, fresh, 0, "clamd " + inSync + ": ClamAV 1.4.6/27100/"},
		{"no managed engine: clamd skipped", dbOptions{dir: dir, clamd: gone, maxAge: 24 * time.Hour}, fresh, 0, "total: 8717514 signatures in 4 files, version 27100, built 2026-11-23 14:10 UTC, 1h00m old\n"},
		{"stale", dbOptions{dir: dir, clamd: gone, maxAge: 90 * time.Minute}, dbT0.Add(2 * time.Hour), 1, "WARNING: the database is 2h00m old, more than 1h30m: is freshclam running?\n"},
		{"max-age 0 never warns", dbOptions{dir: dir, clamd: gone}, dbT0.Add(1000 * time.Hour), 0, "41d16h old"},
		{"clamd ahead of disk", dbOptions{dir: dir, clamd: ahead, explicit: true, maxAge: 24 * time.Hour}, fresh, 1, "WARNING: clamd has loaded a different database: version 27101, 27100 on disk"},
		{"named clamd unreachable", dbOptions{dir: dir, clamd: gone, explicit: true, maxAge: 24 * time.Hour}, fresh, 2, "ERROR: clamd " + gone + ": clamd unavailable"},
		{"missing directory", dbOptions{dir: filepath.Join(dir, "nope"), clamd: gone}, fresh, 2, "ERROR: sigdb: open " + filepath.Join(dir, "nope") + ": no such file or directory\n"},
		{"empty directory", dbOptions{dir: testenv.TempDir(t), clamd: gone}, fresh, 1, "total: 0 signatures in 0 files, version none (no container), build time unknown\nWARNING: no signature files in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.timeout = 5 * time.Second
			for _, asJSON := range []bool{false, true} {
				tc.opt.json = asJSON
				var out bytes.Buffer
				code := runDB(context.Background(), tc.opt, tc.now, &out)
				if code != tc.code {
					t.Errorf("json=%v: exit %d, want %d:\n%s", asJSON, code, tc.code, out.String())
				}
				if !asJSON && !strings.Contains(out.String(), tc.contains) {
					t.Errorf("output lacks %q:\n%s", tc.contains, out.String())
				}
				if asJSON && !json.Valid(out.Bytes()) {
					t.Errorf("invalid JSON:\n%s", out.String())
				}
			}
		})
	}
}

func TestDBFlags(t *testing.T) {
	dir := goldenDB(t)
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"db", "--dir", dir, "--max-age", "0", "--json"}, &out, &errb)
	var r struct {
		Status  string `json:"status"`
		Version int    `json:"version"`
		Files   []struct {
			Name string `json:"name"`
		} `json:"files"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Version != 27100 || len(r.Files) != 4 {
		t.Errorf("clamgate db --json: %d %v %+v\n%s%s", code, err, r, out.String(), errb.String())
	}
	if code := Main(context.Background(), []string{"db", "extra"}, &out, &errb); code != 2 {
		t.Errorf("stray argument: exit %d", code)
	}
}

// TestDBWithClamd asks a real clamd: it loaded the test database (no daily,
// so no version), then a daily container appears on disk, and `clamgate
// db` says clamd is behind until clamd reloads.
func TestDBWithClamd(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	addr := "unix:" + c.Socket
	run := func() (int, string) {
		var out bytes.Buffer
		code := runDB(context.Background(), dbOptions{dir: c.DBDir, clamd: addr, explicit: true, timeout: 10 * time.Second}, time.Now(), &out)
		return code, out.String()
	}
	if code, out := run(); code != 0 || !strings.Contains(out, "clamd "+addr+": ClamAV ") || !strings.Contains(out, "total: 3 signatures in 2 files, version none") {
		t.Fatalf("test database: exit %d\n%s", code, out)
	}
	// A daily.cud built by sigtool 1.4.6 (--unsigned --cvd-version=27100).
	cud, err := os.ReadFile("../sigdb/testdata/daily.cud")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(c.DBDir, "daily.cud"), cud, 0o644))
	if code, out := run(); code != 1 || !strings.Contains(out, "WARNING: clamd has loaded an older database: version 0, 27100 on disk") {
		t.Fatalf("new daily on disk: exit %d\n%s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Client("unix").Command(ctx, "RELOAD"); err != nil {
		t.Fatal(err)
	}
	for {
		code, out := run()
		if code == 0 && strings.Contains(out, "/27100/") {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("after RELOAD: exit %d\n%s", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
