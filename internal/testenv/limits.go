package testenv

import (
	"fmt"
	"maps"
	"slices"

	"clamgate/internal/clamd"
)

// LimitsClamd are clamd.conf lines for the scan-limit tests: AlertExceedsMax
// as the gateway's engines have it, and MaxFiles and MaxScanSize low enough
// that the objects past them stay small. MaxRecursion is clamd's default, 17.
var LimitsClamd = []string{"AlertExceedsMax yes", "MaxFiles 50", "MaxScanSize 1M"}

// FrugalClamd are the clamd.conf lines of a clamd that reloads frugally,
// as the managed engine and deploy write them and docs/database.md asks of
// an external one. IdleTimeout matters as much as the first: clamd 1.4's
// non-concurrent RELOAD waits for every worker thread to exit, and a
// worker that scanned anything exits only IdleTimeout (30 s by default)
// after its last job; without it a reload that follows a scan stalls
// about 30 s whatever the database's size.
var FrugalClamd = []string{"ConcurrentDatabaseReload no", "SelfCheck 0", "IdleTimeout 2"}

// LimitObject is one crafted object for the scan-limit tests.
type LimitObject struct {
	Name string
	Data []byte
	Over bool // past one of LimitsClamd's limits: clamd did not scan it whole
}

// LimitObjects are EICAR in 16 nested zips (within MaxRecursion: FOUND),
// in 17, 18 and 20 (past it), more than MaxFiles files, and more than
// MaxScanSize bytes; each hides EICAR past the limit it breaks.
func LimitObjects() []LimitObject {
	many := map[string][]byte{}
	for i := range 60 {
		many[fmt.Sprintf("f%02d.txt", i)] = fmt.Appendf(nil, "file %d\n", i)
	}
	many["zz_eicar.com"] = []byte(EICAR)
	big := map[string][]byte{"a.bin": make([]byte, 700<<10), "b.bin": make([]byte, 700<<10), "c_eicar.com": []byte(EICAR)}
	return []LimitObject{
		{Name: "nested 16", Data: NestedZip(16)},
		{Name: "nested 17", Data: NestedZip(17), Over: true},
		{Name: "nested 18", Data: NestedZip(18), Over: true},
		{Name: "nested 20", Data: NestedZip(20), Over: true},
		{Name: "over MaxFiles", Data: Zip(many), Over: true},
		{Name: "over MaxScanSize", Data: Zip(big), Over: true},
	}
}

// NestedZip is EICAR in depth zips, one inside the other.
func NestedZip(depth int) []byte { return clamd.NestedEICAR(depth) }

// Zip is an archive of files, in name order.
func Zip(files map[string][]byte) []byte {
	names := slices.Sorted(maps.Keys(files))
	data := make([][]byte, len(names))
	for i, n := range names {
		data[i] = files[n]
	}
	return clamd.Zip(names, data)
}
