package clamd

import (
	"archive/zip"
	"bytes"
	"fmt"
)

// EICAR is the standard antivirus test string; never real malware.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// NestedEICAR is EICAR in depth zip archives, one inside the other. Past
// clamd's MaxRecursion (17 by default) clamd stops unpacking: without
// AlertExceedsMax it answers OK, with it Heuristics.Limits.Exceeded FOUND,
// which is how doctor tells the two apart on a running clamd.
func NestedEICAR(depth int) []byte {
	data, name := []byte(EICAR), "eicar.com"
	for i := range depth {
		data = Zip([]string{name}, [][]byte{data})
		name = fmt.Sprintf("level%d.zip", depth-i)
	}
	return data
}

// Zip is an archive of the files names[i] holding data[i], deflated.
func Zip(names []string, data [][]byte) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for i, name := range names {
		f, err := w.Create(name)
		if err == nil {
			_, err = f.Write(data[i])
		}
		if err != nil {
			panic(err) // writing to memory cannot fail
		}
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}
