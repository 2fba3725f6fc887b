package clamd

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// Measured: clamd copies an INSTREAM into a temporary file of its own before
// scanning it, which costs it about a fifth more CPU per small scan than
// scanning a descriptor it is handed; and its single receiving thread reads
// every client's INSTREAM data, so a proxy's large download passing through
// it makes every other client's request wait (mail p99 36 ms under a proxy
// flood that way). The gateway's dispatcher spools every stream (a memfd
// or an unlinked file) before the job takes a slot, so for a local clamd a
// stream is handed over as that descriptor.
func (c *Client) instreamLocal(ctx context.Context, r io.Reader) (string, error) {
	if f, ok := r.(*os.File); ok && isRegular(f) {
		reply, err := c.Fildes(ctx, f)
		return streamName(reply), err
	}
	return c.instream(ctx, r)
}

// streamName renames clamd's fd[N] to "stream": the client asked about a
// stream, so the reply says "stream", as INSTREAM's.
func streamName(reply string) string {
	if !strings.HasPrefix(reply, "fd[") {
		return reply
	}
	if i := strings.Index(reply, "]: "); i > 0 {
		return "stream" + reply[i+1:]
	}
	return reply
}

func isRegular(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}

// FileAsStream scans f by INSTREAM, for a backend that takes no
// descriptors, and names it in the reply as FILDES would ("fd[N]"), so
// that the caller reads the verdict as it reads a local clamd's. The file
// is read by offset (pread): the descriptor's own offset, which the client
// that passed it shares, does not move.
func (c *Client) FileAsStream(ctx context.Context, f *os.File) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	reply, err := c.instream(ctx, io.NewSectionReader(f, 0, fi.Size()))
	if rest, ok := strings.CutPrefix(reply, "stream: "); ok {
		reply = fmt.Sprintf("fd[%d]: %s", f.Fd(), rest)
	}
	return reply, err
}
