package icap

import (
	"errors"
	"io"

	"clamgate/internal/scan"
)

var errTooBig = errors.New("body larger than max_object")

// body is what the scan job reads: the preview, then (after asking the
// client to continue) the rest of the chunked body. It counts against the
// size limit and copies into the spool when the body must be echoed back.
type body struct {
	preview   []byte
	cont      func() error // asks the client for the rest; nil when there is none
	rest      io.Reader
	n, limit  int64
	spool     *scan.FrontSpool // nil when the body need not be kept
	clientErr error            // the client's side failed: not clamd's fault
	spoolErr  error            // keeping the body failed: the gateway's fault (or busy)
	eof       bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.clientErr != nil {
		return 0, b.clientErr
	}
	n, err := b.read(p)
	if n > 0 && b.spool != nil {
		if _, werr := b.spool.Write(p[:n]); werr != nil {
			b.clientErr, b.spoolErr = werr, werr
			return 0, werr
		}
	}
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		b.clientErr = errTooBig
		return 0, errTooBig
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.clientErr = err
	}
	return n, err
}

func (b *body) read(p []byte) (int, error) {
	if len(b.preview) > 0 {
		n := copy(p, b.preview)
		b.preview = b.preview[n:]
		switch {
		case len(b.preview) > 0:
			return n, nil
		case b.rest == nil:
			return n, io.EOF
		case n < len(p):
			// Ask for the rest now and hand it over with the preview: a
			// small body then reaches clamd whole, in one write, instead of
			// clamd holding half a scan over a round trip to the client.
			m, err := b.readRest(p[n:])
			return n + m, err
		}
		return n, nil
	}
	if b.rest == nil {
		return 0, io.EOF
	}
	return b.readRest(p)
}

func (b *body) readRest(p []byte) (int, error) {
	if b.cont != nil {
		if err := b.cont(); err != nil {
			return 0, err
		}
		b.cont = nil
	}
	return b.rest.Read(p)
}

// unlimited lets the remaining body through without a size limit: it is
// being relayed unscanned by configuration (over_limit = "pass").
func (b *body) unlimited() { b.limit, b.clientErr = 0, nil }

// spoolInMemory is how much of a body kept for the echo stays in memory
// before the rest goes to a spool file: large objects never sit in the
// gateway's memory.
const spoolInMemory = 256 << 10

// causeOf is what a spool failure hides from the client, for the log.
func causeOf(err error) string {
	var se *scan.SpoolError
	if errors.As(err, &se) {
		return ": " + se.Err.Error()
	}
	return ""
}
