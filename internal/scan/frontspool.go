package scan

import (
	"bytes"
	"io"
	"os"
)

// FrontSpool keeps an object for a front while its bytes arrive, before
// the scan job starts: the ICAP body that must be echoed after a clean
// verdict, the mail a milter assembles from the MTA's packets. Its head
// stays in memory; past that it goes to an unlinked file in the spool
// directory, which the job then hands to a local clamd as it is, so the
// bytes are copied once on their way instead of through a pipe into the
// dispatcher's own spool. Every byte is reserved from the gateway's spool
// budget before it is kept.
type FrontSpool struct {
	dir   string
	res   *Reservation
	mem   *bytes.Buffer
	limit int // bytes kept in memory
	file  *os.File
}

// NewFrontSpool keeps up to inMemory bytes in memory, in buf's storage
// (nil: a buffer grown as needed), the rest in dir ("" = $TMPDIR), all
// reserved from res.
func NewFrontSpool(dir string, res *Reservation, inMemory int, buf []byte) *FrontSpool {
	return &FrontSpool{dir: dir, res: res, mem: bytes.NewBuffer(buf[:0]), limit: inMemory}
}

// Write keeps p. A refusal of the budget is a *BusyError, a failure to
// store a *SpoolError; what was kept before stays.
func (s *FrontSpool) Write(p []byte) (int, error) {
	if err := s.res.Grow(int64(len(p))); err != nil {
		return 0, err
	}
	if s.file == nil && s.mem.Len()+len(p) <= s.limit {
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "clamgate-front-*")
		if err != nil {
			return 0, &SpoolError{Err: err}
		}
		os.Remove(f.Name()) // nothing to clean up, whatever happens next
		s.file = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, &SpoolError{Err: err}
		}
		s.mem.Reset()
	}
	n, err := s.file.Write(p)
	if err != nil {
		return n, &SpoolError{Err: err}
	}
	return n, nil
}

// Reader reads what was kept from its start, and can be asked for again:
// the spool file itself (a job hands it to a local clamd as a descriptor)
// or the bytes in memory.
func (s *FrontSpool) Reader() (io.Reader, error) {
	if s.file == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, &SpoolError{Err: err}
	}
	return s.file, nil
}

// Close drops what was kept and gives its bytes back to the budget. The
// memory buffer given to NewFrontSpool is free again.
func (s *FrontSpool) Close() {
	if s == nil {
		return
	}
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	s.mem.Reset()
	s.res.Release()
}
