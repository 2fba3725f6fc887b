package testenv

import (
	"archive/zip"
	"bytes"
	"fmt"
	"slices"
)

// LimitsClamd are clamd.conf lines for the scan-limit tests: AlertExceedsMax
// as the gateway's engines have it, and MaxFiles and MaxScanSize low enough
// that the objects past them stay small. MaxRecursion is clamd's default, 17.
var LimitsClamd = []string{"AlertExceedsMax yes", "MaxFiles 50", "MaxScanSize 1M"}

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
func NestedZip(depth int) []byte {
	data := []byte(EICAR)
	name := "eicar.com"
	for i := range depth {
		data = Zip(map[string][]byte{name: data})
		name = fmt.Sprintf("level%d.zip", depth-i)
	}
	return data
}

// Zip is an archive of files, in name order (deflated).
func Zip(files map[string][]byte) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, name := range sortedKeys(files) {
		f, err := w.Create(name)
		if err == nil {
			_, err = f.Write(files[name])
		}
		if err != nil {
			panic(err) // writing to memory
		}
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
