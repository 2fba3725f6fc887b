package sigdb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
)

// How the signatures of a kind of file are counted.
type counting int

const (
	notSignatures counting = iota // not a database file: left out of the snapshot
	container                     // .cvd/.cld/.cud: the header says
	byLine                        // one signature per line, '#' starts a comment
	byYaraRule                    // one signature per "rule NAME"
	wholeFile                     // .cbc: a file is one bytecode signature
	uncounted                     // .cat: a binary catalog, it changes trust but holds no signatures
)

// countingFor follows the extensions clamd loads from a database directory
// (libclamav's CLI_DBEXT). .cfg and .info describe a container rather than
// match anything, so they are left out; .fp, .sfp, .ign and .ign2 are kept
// because they change what clamd reports.
func countingFor(kind string) counting {
	switch kind {
	case "cvd", "cld", "cud":
		return container
	case "db", "hdb", "hsb", "hdu", "hsu", "mdb", "msb", "mdu", "msu",
		"ndb", "ndu", "ldb", "ldu", "cdb", "crb", "fp", "sfp", "ign", "ign2",
		"idb", "pdb", "gdb", "wdb", "ftm", "imp", "pwdb", "sdb", "zmd", "rmd":
		return byLine
	case "yar", "yara":
		return byYaraRule
	case "cbc":
		return wholeFile
	case "cat":
		return uncounted
	}
	return notSignatures
}

// countFile counts the signatures of a loose file without holding it in
// memory: a synthetic benchmark database has files of hundreds of MiB.
func countFile(path string, how counting) (int, error) {
	switch how {
	case wholeFile:
		return 1, nil
	case uncounted:
		return 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if how == byYaraRule {
		return countLines(f, isYaraRule)
	}
	return countLines(f, isSignatureLine)
}

// countLines calls isSig on the start of every line. ReadSlice hands out
// slices of the reader's own buffer, so a line costs one IndexByte and no
// allocation; a line longer than the buffer is judged by its first part.
func countLines(r io.Reader, isSig func([]byte) bool) (int, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	n, atStart := 0, true
	for {
		line, err := br.ReadSlice('\n')
		if atStart && len(line) > 0 && isSig(line) {
			n++
		}
		atStart = !errors.Is(err, bufio.ErrBufferFull)
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err != nil && atStart:
			return n, err
		}
	}
}

func isSignatureLine(line []byte) bool {
	line = bytes.TrimRight(line, "\r\n")
	return len(line) > 0 && line[0] != '#'
}

func isYaraRule(line []byte) bool {
	line = bytes.TrimLeft(line, " \t")
	for _, modifier := range [][]byte{[]byte("private "), []byte("global ")} {
		line = bytes.TrimLeft(bytes.TrimPrefix(line, modifier), " \t")
	}
	rest, ok := bytes.CutPrefix(line, []byte("rule"))
	return ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t')
}
