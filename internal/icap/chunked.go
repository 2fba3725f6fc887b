package icap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
)

// chunkReader decodes an ICAP chunked body. Unlike HTTP's, its last chunk
// may carry the "ieof" extension: the preview was the whole body.
type chunkReader struct {
	r       *bufio.Reader
	left    int64 // bytes left in the current chunk
	started bool  // a chunk was read: its CRLF precedes the next size line
	done    bool
	ieof    bool
	err     error
}

func newChunkReader(r *bufio.Reader) *chunkReader { return &chunkReader{r: r} }

// Read returns io.EOF together with the last data when the end of the body
// is already buffered, so that small bodies reach clamd in one write. With
// data in hand it never waits for more.
func (c *chunkReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && c.err == nil {
		if c.left == 0 {
			if n > 0 && !c.sizeLineBuffered() {
				break
			}
			c.err = c.next()
			continue
		}
		want := min(int64(len(p)-n), c.left)
		if n > 0 {
			if c.r.Buffered() == 0 {
				break
			}
			want = min(want, int64(c.r.Buffered()))
		}
		m, err := c.r.Read(p[n : n+int(want)])
		n += m
		c.left -= int64(m)
		if err != nil {
			c.err = unexpected(err)
		}
	}
	if n > 0 && c.err != io.EOF {
		return n, nil
	}
	return n, c.err
}

// sizeLineBuffered reports whether the next size line (and, for the last
// chunk, the empty line ending the body) can be read without waiting.
func (c *chunkReader) sizeLineBuffered() bool {
	b, _ := c.r.Peek(c.r.Buffered())
	need := 2 // CRLF ending the chunk, then the size line
	if !c.started {
		need = 1
	}
	for i := 0; i < need; i++ {
		j := bytes.IndexByte(b, '\n')
		if j < 0 {
			return false
		}
		if i == need-1 && isLastChunk(b[:j]) {
			return bytes.IndexByte(b[j+1:], '\n') >= 0 // and the empty line ending the body
		}
		b = b[j+1:]
	}
	return true
}

// next reads a chunk size line; at the last chunk it reads the trailer and
// reports io.EOF.
func (c *chunkReader) next() error {
	if c.done {
		return io.EOF
	}
	budget := maxICAPHeader
	if c.started {
		if line, err := readLine(c.r, &budget); err != nil || line != "" {
			return badChunk(err)
		}
	}
	line, err := readLine(c.r, &budget)
	if err != nil {
		return badChunk(err)
	}
	size, ext, _ := strings.Cut(line, ";")
	n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
	if err != nil || n < 0 || len(strings.TrimSpace(size)) > 15 {
		return badRequest("bad chunk size %q", truncate(size, 20))
	}
	c.started = true
	if n > 0 {
		c.left = n
		return nil
	}
	c.done, c.ieof = true, strings.TrimSpace(ext) == "ieof"
	if err := skipTrailer(c.r, &budget); err != nil {
		return err
	}
	return io.EOF
}

func skipTrailer(r *bufio.Reader, budget *int) error {
	for {
		line, err := readLine(r, budget)
		if err != nil {
			return badChunk(err)
		}
		if line == "" {
			return nil
		}
	}
}

func isLastChunk(sizeLine []byte) bool {
	size, _, _ := strings.Cut(string(sizeLine), ";")
	size = strings.TrimSpace(size)
	return size != "" && strings.Trim(size, "0") == ""
}

func badChunk(err error) error {
	switch {
	case err == nil:
		return badRequest("malformed chunk")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return io.ErrUnexpectedEOF
	}
	// readLine's own refusal, or a read error (timeout, reset) with no one
	// left to answer.
	return err
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// readPreview reads a preview of at most limit bytes; ieof reports that it
// was the whole body.
func readPreview(r *bufio.Reader, limit int) (data []byte, ieof bool, err error) {
	cr := newChunkReader(r)
	data = make([]byte, 0, min(limit, 64<<10))
	buf := make([]byte, 4096)
	for {
		n, err := cr.Read(buf)
		if len(data)+n > limit {
			return nil, false, badRequest("preview larger than the %d bytes announced", limit)
		}
		data = append(data, buf[:n]...)
		if err == io.EOF {
			return data, cr.ieof, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}
