package clamdproto

import (
	"encoding/binary"
	"errors"
	"io"
)

// ErrSizeLimit is returned when an INSTREAM grows past the allowed size.
// clamd answers it with SizeLimitReply and closes the connection.
var ErrSizeLimit = errors.New("INSTREAM size limit exceeded")

// SizeLimitReply is clamd's exact reply text for an oversize stream.
const SizeLimitReply = "INSTREAM size limit exceeded. ERROR"

// ChunkReader turns INSTREAM's <uint32 big-endian length><bytes> framing back
// into a plain byte stream, ending at the zero-length chunk. It never
// buffers more than the caller's read buffer, so a 100 MiB stream costs the
// gateway no more memory than a 4 KiB one.
type ChunkReader struct {
	r     io.Reader
	limit int64 // maximum total payload; <=0 means unlimited
	total int64
	left  uint32 // bytes remaining in the current chunk
	done  bool
	err   error // the client's own read error, if any
}

// NewChunkReader reads INSTREAM chunks from r, failing with ErrSizeLimit
// as soon as a chunk header announces more than limit bytes in total.
func NewChunkReader(r io.Reader, limit int64) *ChunkReader {
	return &ChunkReader{r: r, limit: limit}
}

// Total is the number of payload bytes announced so far.
func (c *ChunkReader) Total() int64 { return c.total }

// Done reports whether the stream's terminating zero-length chunk was read.
func (c *ChunkReader) Done() bool { return c.done }

// Err is the error reading from the client, if one happened: it tells a
// client that hung up or stalled from a backend that failed.
func (c *ChunkReader) Err() error { return c.err }

func (c *ChunkReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	for c.left == 0 {
		if err := c.nextHeader(); err != nil {
			return 0, err
		}
		if c.done {
			return 0, io.EOF
		}
	}
	if uint32(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= uint32(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = err
		return n, err
	}
	if c.left == 0 && c.terminatorBuffered() {
		c.done = true
		return n, io.EOF // lets the backend send the last data and the end together
	}
	return n, nil
}

// buffered is what ChunkReader needs to look ahead without blocking.
type buffered interface {
	Buffered() int
	Peek(int) ([]byte, error)
	Discard(int) (int, error)
}

// terminatorBuffered consumes the zero-length chunk if it has already
// arrived, without ever waiting for it.
func (c *ChunkReader) terminatorBuffered() bool {
	br, ok := c.r.(buffered)
	if !ok || br.Buffered() < 4 {
		return false
	}
	hdr, err := br.Peek(4)
	if err != nil || binary.BigEndian.Uint32(hdr) != 0 {
		return false
	}
	_, _ = br.Discard(4)
	return true
}

// nextHeader reads one chunk length. The limit is checked on the announced
// length, before the data is read, which is when clamd checks it too.
func (c *ChunkReader) nextHeader() error {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		c.err = err
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		c.done = true
		return nil
	}
	if c.limit > 0 && c.total+int64(n) > c.limit {
		return ErrSizeLimit
	}
	c.total += int64(n)
	c.left = n
	return nil
}

// WriteChunk writes one INSTREAM chunk; an empty p writes the terminator.
func WriteChunk(w io.Writer, p []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	_, err := w.Write(p)
	return err
}
