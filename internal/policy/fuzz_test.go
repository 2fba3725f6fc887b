package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRootFor feeds client path text to RootFor and opens what it picks:
// whatever the text, a file opened is beneath the root, as the kernel
// names it.
func FuzzRootFor(f *testing.F) {
	base := f.TempDir()
	root := filepath.Join(base, "root")
	for _, d := range []string{"root/a/b", "outside"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for name, target := range map[string]string{"root/up": "../..", "root/abs": "/", "root/a/lnk": "b", "root/out": "../outside"} {
		if err := os.Symlink(target, filepath.Join(base, name)); err != nil {
			f.Fatal(err)
		}
	}
	p := &Policy{Roots: []string{root}}
	if err := p.OpenRoots(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(p.CloseRoots)
	for _, s := range []string{root + "/a/lnk/../b", root + "/up/up/etc", root + "//abs/outside", root + "/out", root + "/../outside", "/etc/passwd", root} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		r, rel, ok := p.RootFor(name)
		if !ok {
			return
		}
		if !within(filepath.Clean(name), r.Path) || strings.HasPrefix(rel, "/") {
			t.Fatalf("%q: root %s, rel %q", name, r.Path, rel)
		}
		file, err := r.Open(rel)
		if err != nil {
			return
		}
		defer file.Close()
		real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", file.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if real != root && !strings.HasPrefix(real, root+"/") {
			t.Fatalf("%q opened %s, outside %s", name, real, root)
		}
	})
}
