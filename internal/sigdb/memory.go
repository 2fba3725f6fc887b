package sigdb

import (
	"os"
	"path/filepath"
	"strings"
)

// Memory is what a clamd loading a database needs: every engine form
// (the managed clamd's cgroup, deploy's container and unit) caps it alike.
//
// clamd's resident size after loading is about four times the size of the
// database files on disk (961 MiB resident for ~240 MiB of
// main/daily/bytecode files on the reference host of the article, 656 MiB
// for a 3.4 M-signature synthetic database here). With loaded = max(4 x
// disk, 256 MiB) (1 GiB when no database is present yet), High = 1.5 x
// loaded and Max = 2 x loaded, rounded up to 64 MiB: the frugal reload
// keeps one database in memory, so 1.5x leaves room for scan buffers
// before throttling, and 2x still survives a reload in clamd's concurrent
// mode if somebody turns it back on.
type Memory struct {
	DiskBytes       int64
	LoadedMiB       int64
	HighMiB, MaxMiB int64
	Assumed         bool // no database on disk yet: a full one (1 GiB loaded) is assumed
}

const (
	loadFactor   = 4
	MinLoadedMiB = 256
	defaultMiB   = 1024
	roundMiB     = 64
)

// SizeMemory derives the caps from the database's size on disk.
func SizeMemory(diskBytes int64) Memory {
	m := Memory{DiskBytes: diskBytes, LoadedMiB: max(loadFactor*diskBytes>>20, MinLoadedMiB)}
	if diskBytes == 0 {
		m.LoadedMiB, m.Assumed = defaultMiB, true
	}
	m.HighMiB = roundUp(m.LoadedMiB*3/2, roundMiB)
	m.MaxMiB = roundUp(m.LoadedMiB*2, roundMiB)
	return m
}

func roundUp(v, step int64) int64 { return (v + step - 1) / step * step }

// DiskBytes is the size of the signature files in dir, freshclam's
// temporary files left out.
func DiskBytes(dir string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(e.Name(), "tmp.") {
			switch filepath.Ext(e.Name()) {
			case ".cvd", ".cld", ".cud", ".cdb", ".hdb", ".hsb", ".ndb", ".ldb", ".mdb", ".msb", ".ign2", ".fp", ".sfp", ".pdb", ".wdb", ".ftm", ".idb", ".cbc", ".yar", ".yara", ".gdb", ".crb", ".cat", ".info", ".ign":
				n += fi.Size()
			}
		}
	}
	return n
}
