package scan

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// SmallStream is the largest stream kept in memory (a memfd) while it waits
// for the engine; larger ones go to an unlinked file in the spool directory.
const SmallStream = 128 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, SmallStream); return &b }}

// SpoolError is a stream the gateway could not store: its own fault, not
// the client's, and the job was not scanned. Its text is what a client may
// see; the cause (a spool path, ENOSPC) is only logged.
type SpoolError struct{ Err error }

func (e *SpoolError) Error() string { return "the gateway could not store the stream" }
func (e *SpoolError) Unwrap() error { return e.Err }

// spool reads a client's stream to its end into a file: a memfd when it is
// small, else an unlinked file in dir ("" = $TMPDIR). Every byte is
// reserved from res before it is written; a refusal is a *BusyError. The job then holds no
// engine slot while a slow client trickles its bytes in, its cost is
// known when it asks for one, and a local clamd is handed the descriptor
// instead of reading the bytes through its single receiving thread. A read
// error from r is returned as it is (the client's fault: the front tells
// it apart); a failure to store is a *SpoolError. The file is positioned
// at its start. With hashed, its SHA-256 is computed on the way, for the
// verdict cache, so that the bytes are read once.
func spool(r io.Reader, dir string, res *Reservation, hashed bool) (*os.File, *Digest, error) {
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	buf := *bp
	n, err := readUpTo(r, buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	var f *os.File
	ended := errors.Is(err, io.EOF)
	if ended {
		f = memfd()
	}
	if f == nil {
		if f, err = os.CreateTemp(dir, "clamgate-stream-*"); err != nil {
			return nil, nil, &SpoolError{err}
		}
		os.Remove(f.Name()) // nothing to clean up, whatever happens next
	}
	var h hash.Hash
	if hashed {
		h = sha256.New()
	}
	if ended {
		r = nil // all of it is in buf
	}
	if err := fill(budgeted{f, res, h}, buf[:n], r); err != nil {
		f.Close()
		return nil, nil, err
	}
	if h == nil {
		return f, nil, nil
	}
	var sum Digest
	h.Sum(sum[:0])
	return f, &sum, nil
}

// fill writes head, then the rest of r (nil: none), to f. head's buffer,
// written, carries the rest: no buffer is made per stream.
func fill(f budgeted, head []byte, r io.Reader) error {
	if _, err := f.Write(head); err != nil {
		return storeError(err)
	}
	if r == nil {
		return rewind(f.f)
	}
	if _, err := io.CopyBuffer(onlyWriter{f}, onlyReader{r}, head[:cap(head)]); err != nil {
		var we *writeFailed
		if errors.As(err, &we) {
			return storeError(we.err)
		}
		return err
	}
	return rewind(f.f)
}

func rewind(f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return &SpoolError{err}
	}
	return nil
}

// storeError is a failed spool write as the client may see it: busy when
// the budget refused the bytes, else a *SpoolError.
func storeError(err error) error {
	if IsBusy(err) {
		return err
	}
	return &SpoolError{err}
}

// budgeted writes to f what res has room for, and hashes what it wrote
// (when sum is set).
type budgeted struct {
	f   *os.File
	res *Reservation
	sum hash.Hash
}

func (b budgeted) Write(p []byte) (int, error) {
	if err := b.res.Grow(int64(len(p))); err != nil {
		return 0, err
	}
	n, err := b.f.Write(p)
	if b.sum != nil {
		b.sum.Write(p[:n])
	}
	return n, err
}

func memfd() *os.File {
	fd, err := unix.MemfdCreate("clamgate-stream", unix.MFD_CLOEXEC)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "memfd")
}

// onlyReader hides r's WriteTo and onlyWriter f's ReadFrom, so that
// io.Copy's errors say which side failed.
type onlyReader struct{ io.Reader }

type onlyWriter struct{ w io.Writer }

type writeFailed struct{ err error }

func (e *writeFailed) Error() string { return e.err.Error() }

func (o onlyWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		return n, &writeFailed{err}
	}
	return n, nil
}

// readUpTo fills buf from r; io.EOF means r ended within it.
func readUpTo(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// fileSize is the cost of scanning f: its size from its offset on, or
// unknownCost when it is not a regular file.
func fileSize(f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return unknownCost
	}
	return fi.Size()
}
