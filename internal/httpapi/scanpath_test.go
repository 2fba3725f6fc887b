package httpapi_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"clamgate/internal/testenv"
	"clamgate/internal/testuser"
)

// pathResult is one object of /scanPath's answer, as clamav-rest's README
// shows it.
type pathResult struct {
	Raw, Description, Path, Hash string
	Size                         int
	Status                       string
}

// testScanPath: trees with EICAR, clean files and subdirectories; paths
// outside the root; a symlink that an unprivileged user planted beneath
// the root, leading out of it; paths the gateway cannot read.
func testScanPath(t *testing.T, a *api, dir, files string) {
	tree := mkTree(t, dir, "tree", map[string]string{"a.txt": "clean a", "b.txt": "clean b", "sub/deeper/eicar.txt": testenv.EICAR, "sub/c.txt": "clean c"})
	clean := mkTree(t, dir, "clean", map[string]string{"a.txt": "clean a", "sub/b.txt": "clean b"})
	outside := testenv.TempDir(t)
	os.WriteFile(filepath.Join(outside, "eicar.txt"), []byte(testenv.EICAR), 0o644)

	// The planted tree belongs to an unprivileged user, who links a file
	// and a directory out of the root: the walk must refuse both, never
	// scan (nor find EICAR in) what they lead to.
	u := testuser.New(t, "cgscanpath")
	planted := mkTree(t, dir, "planted", map[string]string{"ok.txt": "clean"})
	if err := os.Chown(planted, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	asUser(t, u, "ln", "-s", filepath.Join(outside, "eicar.txt"), filepath.Join(planted, "link.txt"))
	asUser(t, u, "ln", "-s", outside, filepath.Join(planted, "linkdir"))
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path string
		status     int
		want       []pathResult // compared without Raw's and Description's exact words where empty
	}{
		{"infected in a subdirectory", tree, 406, []pathResult{{Path: tree + "/sub/deeper/eicar.txt", Description: "Eicar-Test-Signature", Status: "FOUND"}}},
		{"clean tree", clean, 200, []pathResult{{Raw: clean + ": OK", Path: clean, Status: "OK"}}},
		{"trailing slash", clean + "/", 200, []pathResult{{Raw: clean + ": OK", Path: clean, Status: "OK"}}},
		{"one file", filepath.Join(tree, "a.txt"), 200, []pathResult{{Raw: tree + "/a.txt: OK", Path: tree + "/a.txt", Status: "OK"}}},
		{"planted links", planted, 412, nil}, // checked below
		{"planted link named", filepath.Join(planted, "linkdir"), 403, nil},
		{"planted link to a file named", filepath.Join(planted, "link.txt"), 403, nil},
		{"outside the roots", outside, 403, nil},
		{"dot-dot out of the root", dir + "/../../etc", 403, nil},
		{"missing", filepath.Join(dir, "missing"), 412, []pathResult{{Path: filepath.Join(dir, "missing"), Status: "ERROR"}}},
		{"fifo", fifo, 412, nil},
		{"no path", "", 400, nil},
	} {
		q := "/scanPath"
		if tc.path != "" {
			q += "?path=" + url.QueryEscape(tc.path)
		}
		resp, out := a.do(files, "GET", q, "", "", nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, resp.StatusCode, tc.status, out)
			continue
		}
		if strings.Contains(string(out), outside) && tc.status != 412 {
			t.Errorf("%s: the answer names what is outside the root: %s", tc.name, out)
		}
		if tc.want == nil {
			continue
		}
		var got []pathResult
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: %v: %s", tc.name, err, out)
		}
		if !matchResults(got, tc.want) {
			t.Errorf("%s: answer %s", tc.name, out)
		}
	}
	// the planted tree: its clean file was scanned, each link is an
	// ERROR, and there is no OK for the tree, nothing found through them
	_, out := a.do(files, "GET", "/scanPath?path="+url.QueryEscape(planted), "", "", nil)
	var got []pathResult
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b pathResult) int { return strings.Compare(a.Path, b.Path) })
	if !matchResults(got, []pathResult{
		{Path: planted + "/link.txt", Status: "ERROR", Description: "Access denied (symlink leads outside the allowed roots of client files)"},
		{Path: planted + "/linkdir", Status: "ERROR", Description: "Access denied (symlink leads outside the allowed roots of client files)"},
	}) {
		t.Errorf("planted tree: %s", out)
	}
	// a policy without roots
	if resp, out := a.do(a.open, "GET", "/scanPath?path="+url.QueryEscape(clean), "", "", nil); resp.StatusCode != 403 {
		t.Errorf("policy without roots: %d %s", resp.StatusCode, out)
	}
}

// matchResults: got has want's objects, in order, each field of want that
// is set equal (Description and Raw by prefix).
func matchResults(got, want []pathResult) bool {
	return slices.EqualFunc(got, want, func(g, w pathResult) bool {
		return g.Path == w.Path && g.Status == w.Status && strings.HasPrefix(g.Description, w.Description) &&
			strings.HasPrefix(g.Raw, w.Raw) && g.Hash == "" && g.Size == 0
	})
}

// mkTree makes dir/name with files (paths relative to it) and returns it.
func mkTree(t *testing.T, dir, name string, files map[string]string) string {
	t.Helper()
	top := filepath.Join(dir, name)
	for p, body := range files {
		p = filepath.Join(top, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return top
}

// asUser runs a command as the test's unprivileged user.
func asUser(t *testing.T, u testuser.User, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v as %s: %v\n%s", name, args, u.Name, err, out)
	}
}
