// Command gensigs writes a deterministic synthetic ClamAV signature
// database, so that benchmarks can load clamd with millions of signatures
// (the real database cannot be downloaded here). The signatures are random
// byte patterns and hashes named Clamgate.Synthetic.*: they match nothing
// real, but cost clamd the same memory and matching work per byte.
//
//	go run ./bench/gensigs -dir DIR [-body 1000000] [-hashes 2000000] [-seed 1]
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

func main() {
	dir := flag.String("dir", "", "directory to write synthetic.ndb and synthetic.hdb into")
	body := flag.Int("body", 1_000_000, "body (.ndb) signatures: random 20-byte patterns")
	hashes := flag.Int("hashes", 2_000_000, "hash (.hdb) signatures: random MD5s")
	seed := flag.Uint64("seed", 1, "seed; the same seed writes the same files")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "gensigs: -dir is required")
		os.Exit(2)
	}
	rng := rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15))
	if err := write(filepath.Join(*dir, "synthetic.ndb"), *body, func(w *bufio.Writer, i int) {
		fmt.Fprintf(w, "Clamgate.Synthetic.Body-%d:0:*:%s\n", i, randomHex(rng, 20))
	}); err != nil {
		fail(err)
	}
	if err := write(filepath.Join(*dir, "synthetic.hdb"), *hashes, func(w *bufio.Writer, i int) {
		fmt.Fprintf(w, "%s:%d:Clamgate.Synthetic.Hash-%d\n", randomHex(rng, 16), 1024+rng.IntN(1<<20), i)
	}); err != nil {
		fail(err)
	}
}

func write(path string, n int, line func(*bufio.Writer, int)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		line(w, i)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randomHex(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gensigs:", err)
	os.Exit(1)
}
