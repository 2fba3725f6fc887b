package deploy

import "fmt"

// Memory is the engine's cgroup limits; the formula is in the package doc.
type Memory struct {
	DiskBytes       int64
	LoadedMiB       int64
	HighMiB, MaxMiB int64
	Assumed         bool // no database on disk yet: a full one (1 GiB loaded) is assumed
}

const (
	loadFactor   = 4
	minLoadedMiB = 256
	defaultMiB   = 1024
	roundMiB     = 64
)

// SizeMemory derives MemoryHigh and MemoryMax from the database's size on disk.
func SizeMemory(diskBytes int64) Memory {
	m := Memory{DiskBytes: diskBytes, LoadedMiB: max(loadFactor*diskBytes>>20, minLoadedMiB)}
	if diskBytes == 0 {
		m.LoadedMiB, m.Assumed = defaultMiB, true
	}
	m.HighMiB = roundUp(m.LoadedMiB*3/2, roundMiB)
	m.MaxMiB = roundUp(m.LoadedMiB*2, roundMiB)
	return m
}

func roundUp(v, step int64) int64 { return (v + step - 1) / step * step }

func (m Memory) directives() string {
	return fmt.Sprintf("# Sized by clamgate deploy: database %d bytes on disk, ~%d MiB loaded (4x; %s);\n# MemoryHigh = 1.5x, MemoryMax = 2x the loaded size.\nMemoryHigh=%dM\nMemoryMax=%dM\n",
		m.DiskBytes, m.LoadedMiB, m.note(), m.HighMiB, m.MaxMiB)
}

func (m Memory) note() string {
	if m.Assumed {
		return "no database yet, 1 GiB assumed"
	}
	return fmt.Sprintf("at least %d MiB", minLoadedMiB)
}
