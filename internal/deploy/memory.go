package deploy

import (
	"fmt"

	"clamgate/internal/sigdb"
)

// Memory is the engine's cgroup limits; the formula is sigdb's.
type Memory = sigdb.Memory

// SizeMemory derives MemoryHigh and MemoryMax from the database's size on disk.
func SizeMemory(diskBytes int64) Memory { return sigdb.SizeMemory(diskBytes) }

func memDirectives(m Memory) string {
	return fmt.Sprintf("# Sized by clamgate deploy: database %d bytes on disk, ~%d MiB loaded (4x; %s);\n# MemoryHigh = 1.5x, MemoryMax = 2x the loaded size.\nMemoryHigh=%dM\nMemoryMax=%dM\n",
		m.DiskBytes, m.LoadedMiB, memNote(m), m.HighMiB, m.MaxMiB)
}

func memNote(m Memory) string {
	if m.Assumed {
		return "no database yet, 1 GiB assumed"
	}
	return fmt.Sprintf("at least %d MiB", sigdb.MinLoadedMiB)
}
