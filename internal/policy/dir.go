package policy

import (
	"encoding/binary"
	"errors"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// ErrTooManyEntries means a directory lists more entries than a walk may
// hold.
var ErrTooManyEntries = errors.New("too many directory entries")

// Listing is a directory's entries, compact: one walk holds the listings of
// every directory it is inside at once, so an entry costs 16 bytes and its
// name, not a FileInfo each (os.ReadDir plus lstat cost ~20 times that).
// Hand-written because neither os nor x/sys/unix returns d_ino and d_type
// together without a stat per entry.
type Listing struct {
	names   []byte
	entries []entry
}

type entry struct {
	ino     uint64
	off     uint32 // of the name in names
	nameLen uint8  // names are at most 255 bytes (NAME_MAX)
	typ     uint8  // DT_*
	_       [2]byte
}

// Len is the number of entries.
func (l *Listing) Len() int { return len(l.entries) }

// Name is entry i's name.
func (l *Listing) Name(i int) string {
	e := l.entries[i]
	return string(l.names[e.off : e.off+uint32(e.nameLen)])
}

// IsDir says the directory listed entry i as a directory (a symlink to
// one is not).
func (l *Listing) IsDir(i int) bool { return l.entries[i].typ == unix.DT_DIR }

// SortLikeClamd orders the entries as clamd walks them: files before
// subdirectories, each group by inode number (clamd sorts so for disk
// locality); equal keys keep the directory's order.
func (l *Listing) SortLikeClamd() {
	slices.SortStableFunc(l.entries, func(a, b entry) int {
		if da, db := a.typ == unix.DT_DIR, b.typ == unix.DT_DIR; da != db {
			if da {
				return 1
			}
			return -1
		}
		switch {
		case a.ino < b.ino:
			return -1
		case a.ino > b.ino:
			return 1
		}
		return 0
	})
}

// ReadDir lists dir, reading the kernel's listing in bounded batches and
// failing with ErrTooManyEntries past max entries, so that memory stays
// bounded however large the directory is.
func ReadDir(dir *os.File, max int) (*Listing, error) {
	fd := int(dir.Fd())
	l := &Listing{}
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return l, nil
		}
		err = parseDirents(buf[:n], func(ino uint64, typ uint8, name []byte) error {
			if string(name) == "." || string(name) == ".." {
				return nil
			}
			if len(l.entries) >= max {
				return ErrTooManyEntries
			}
			if typ == unix.DT_UNKNOWN {
				ino, typ = statEntry(fd, string(name), ino)
			}
			l.entries = append(l.entries, entry{ino: ino, off: uint32(len(l.names)), nameLen: uint8(len(name)), typ: typ})
			l.names = append(l.names, name...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
}

// statEntry fills in what a filesystem without d_type does not say.
func statEntry(dirfd int, name string, ino uint64) (uint64, uint8) {
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return ino, unix.DT_UNKNOWN
	}
	typ := uint8(unix.DT_REG)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		typ = unix.DT_DIR
	case unix.S_IFLNK:
		typ = unix.DT_LNK
	}
	return st.Ino, typ
}

// errBadDirent means the kernel's buffer did not parse; it never happens
// with a real kernel, and stops the listing rather than misread it.
var errBadDirent = errors.New("malformed directory entry")

// parseDirents walks a getdents64 buffer: records of d_ino (8 bytes),
// d_off (8), d_reclen (2), d_type (1) and a NUL-terminated name, padded.
func parseDirents(buf []byte, fn func(ino uint64, typ uint8, name []byte) error) error {
	const header = 19
	for len(buf) > 0 {
		if len(buf) < header {
			return errBadDirent
		}
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen <= header || reclen > len(buf) {
			return errBadDirent
		}
		name := buf[header:reclen]
		end := slices.Index(name, 0)
		if end < 1 || end > 255 || slices.Contains(name[:end], '/') {
			return errBadDirent
		}
		if err := fn(binary.NativeEndian.Uint64(buf[0:8]), buf[18], name[:end]); err != nil {
			return err
		}
		buf = buf[reclen:]
	}
	return nil
}
