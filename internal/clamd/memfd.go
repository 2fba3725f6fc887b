package clamd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// SmallStream is the largest stream sent to a local clamd as a descriptor
// rather than with INSTREAM.
const SmallStream = 128 << 10

// Measured: clamd copies an INSTREAM into a temporary file of its own before
// scanning it, which costs it about a fifth more CPU per small scan than
// scanning a descriptor it is handed. clamd is the resource every client
// shares, so for a local clamd the gateway puts small streams in an
// anonymous memory file (memfd) and passes that instead.
var smallBufs = sync.Pool{New: func() any { b := make([]byte, SmallStream); return &b }}

// instreamSmall reads up to SmallStream bytes of r; when r ends within
// them, the stream is scanned as a memfd descriptor. Otherwise what was read
// is sent first, and the rest streamed, with INSTREAM.
func (c *Client) instreamSmall(ctx context.Context, r io.Reader) (string, error) {
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	buf := *bp
	n, err := readUpTo(r, buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if errors.Is(err, io.EOF) {
		if reply, ok, ferr := c.fildesBytes(ctx, buf[:n]); ok {
			return reply, ferr
		}
	}
	var rest io.Reader = eofReader{}
	if !errors.Is(err, io.EOF) {
		rest = r
	}
	return c.instream(ctx, io.MultiReader(bytes.NewReader(buf[:n]), rest))
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

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// fildesBytes scans data as a memfd; ok is false when no memfd could be
// made, and the caller streams instead. clamd names the result fd[N]: the
// client asked about a stream, so the reply says "stream", as INSTREAM's.
func (c *Client) fildesBytes(ctx context.Context, data []byte) (reply string, ok bool, err error) {
	fd, merr := unix.MemfdCreate("clamgate-stream", unix.MFD_CLOEXEC)
	if merr != nil {
		return "", false, nil
	}
	f := os.NewFile(uintptr(fd), "memfd")
	defer f.Close()
	if _, werr := f.Write(data); werr != nil {
		return "", false, nil
	}
	reply, err = c.Fildes(ctx, f)
	return streamName(reply), true, err
}

func streamName(reply string) string {
	if !strings.HasPrefix(reply, "fd[") {
		return reply
	}
	if i := strings.Index(reply, "]: "); i > 0 {
		return "stream" + reply[i+1:]
	}
	return reply
}
