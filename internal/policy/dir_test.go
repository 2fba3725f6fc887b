package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestReadDirBoundsAndOrder(t *testing.T) {
	dir := t.TempDir()
	for i := range 50 {
		name := fmt.Sprintf("f%02d", 49-i)
		if i%10 == 0 {
			if err := os.Mkdir(filepath.Join(dir, "d"+name), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f01", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	open := func() *os.File {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	if _, err := ReadDir(open(), 50); !errors.Is(err, ErrTooManyEntries) {
		t.Fatalf("51 entries, max 50: %v", err)
	}
	l, err := ReadDir(open(), 51)
	if err != nil {
		t.Fatal(err)
	}
	l.SortLikeClamd()
	if l.Len() != 51 {
		t.Fatalf("%d entries", l.Len())
	}
	var last uint64
	for i := range l.Len() {
		fi, err := os.Lstat(filepath.Join(dir, l.Name(i)))
		if err != nil {
			t.Fatal(err)
		}
		wantDir := i >= 46 // 45 files and the link, then 5 directories
		if fi.IsDir() != wantDir || l.IsDir(i) != wantDir {
			t.Errorf("entry %d %s: dir %v", i, l.Name(i), fi.IsDir())
		}
		ino := inode(fi)
		if i != 46 && ino < last {
			t.Errorf("entry %d %s: inode %d after %d", i, l.Name(i), ino, last)
		}
		last = ino
	}
}

func FuzzParseDirents(f *testing.F) {
	rec := func(ino uint64, typ uint8, name string) []byte {
		n := (19 + len(name) + 1 + 7) &^ 7
		b := make([]byte, n)
		binary.NativeEndian.PutUint64(b, ino)
		binary.NativeEndian.PutUint16(b[16:], uint16(n))
		b[18] = typ
		copy(b[19:], name)
		return b
	}
	f.Add(append(rec(1, 4, "."), rec(7, 8, "file")...))
	f.Add(rec(3, 10, "a/b"))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, buf []byte) {
		_ = parseDirents(buf, func(ino uint64, typ uint8, name []byte) error {
			if len(name) == 0 || len(name) > 255 {
				t.Fatalf("name of %d bytes", len(name))
			}
			for _, c := range name {
				if c == 0 || c == '/' {
					t.Fatalf("name %q", name)
				}
			}
			return nil
		})
	})
}
