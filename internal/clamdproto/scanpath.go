package clamdproto

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// walk is one path command (SCAN, CONTSCAN, MULTISCAN, ALLMATCHSCAN). The
// gateway opens every file itself, beneath the client's root, and hands
// clamd only descriptors; the replies use the client's paths exactly as
// clamd would print them.
type walk struct {
	c       *conn
	ctx     context.Context
	root    *policy.Root
	stopHit bool // SCAN stops at the first infected file
	found   bool
	failed  bool // a file could not be checked: no "OK" for the tree
	aborted bool // the engine failed: stop the walk
	depth   int  // directories open: one descriptor each
	held    int  // directory entries held, across the open directories
	files   int  // files scanned
	// maxDepth and maxEntries bound what one walk holds (descriptors and
	// listings), whatever tree the client built.
	maxDepth, maxEntries int
	// okIfEmpty: clamd's MULTISCAN prints nothing at all for a tree
	// without files; the other commands print "OK".
	okIfEmpty bool
}

func (c *conn) scanPath(ctx context.Context, cmd Command) {
	display := trimSlashes(cmd.Arg)
	root, rel, ok := c.pol.RootFor(cmd.Arg)
	if !ok {
		c.refuse(cmd, fmt.Sprintf("%s: Access denied (not under an allowed root of client %s)", display, c.pol.Name))
		return
	}
	// ALLMATCHSCAN walks a tree like SCAN: clamd stops at the first
	// infected file (all matches apply within a file).
	w := &walk{c: c, ctx: ctx, root: root, stopHit: cmd.Name == CmdScan || cmd.Name == CmdAllMatchScan,
		okIfEmpty: cmd.Name != CmdMultiScan}
	w.maxDepth, w.maxEntries = c.pol.WalkLimits()
	w.top(cmd, display, rel)
}

// top scans the path the client named.
func (w *walk) top(cmd Command, display, rel string) {
	f, err := w.root.Open(rel)
	if err != nil {
		w.openFailed(cmd, display, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		w.c.reply(fmt.Sprintf("%s: File path check failure: %s. ERROR", display, strerror(err)))
		return
	}
	switch {
	case fi.Mode().IsRegular():
		w.file(f, display)
	case fi.IsDir():
		w.dir(f, display, rel)
		if !w.found && !w.failed && !w.aborted && (w.files > 0 || w.okIfEmpty) {
			w.c.reply(display + ": OK")
		}
	default:
		// clamd's exact answer for FIFOs, sockets and devices.
		w.c.reply(display + ": Not supported file type ERROR")
		w.c.reply(display + ": OK")
	}
}

func (w *walk) openFailed(cmd Command, display string, err error) {
	if errors.Is(err, policy.ErrOutsideRoots) {
		w.c.refuse(cmd, fmt.Sprintf("%s: Access denied (symlink leads outside the allowed roots of client %s)", display, w.c.pol.Name))
		return
	}
	w.c.reply(fmt.Sprintf("%s: File path check failure: %s. ERROR", display, strerror(err)))
}

// file scans one open regular file through the dispatcher.
func (w *walk) file(f *os.File, display string) {
	w.files++
	res, err := w.c.srv.Dispatcher.Do(w.ctx, scan.Job{
		Client: w.c.pol.Name, Identity: w.c.peer.Cert, Protocol: "clamd", Kind: scan.File, File: f, Object: display,
	})
	if err != nil {
		w.aborted = true
		w.c.reply(failure(display, err))
		return
	}
	switch res.Verdict {
	case scan.Infected:
		w.found = true
		w.c.reply(renameReply(res.Reply, display))
	case scan.Failed:
		w.failed = true
		w.c.reply(renameReply(res.Reply, display))
	case scan.Clean:
		if w.depth == 0 { // inside a tree only the tree gets an OK
			w.c.reply(display + ": OK")
		}
	}
}

// dir walks a directory in clamd's order (see Listing.SortLikeClamd). The
// whole listing is needed for that order, so its size is bounded instead:
// past maxEntries held, or maxDepth levels, the walk fails closed for
// that directory, with an ERROR and no OK for the tree.
func (w *walk) dir(d *os.File, display, rel string) {
	if w.depth >= w.maxDepth {
		w.failed = true
		w.c.reply(fmt.Sprintf("%s: Directory deeper than %d levels (max_walk_depth of client %s). ERROR", display, w.maxDepth, w.c.pol.Name))
		return
	}
	if !w.c.srv.walkFDs.acquire() {
		w.failed = true
		w.c.srv.Log.Warn("walk refused: gateway-wide bound on directory descriptors reached", "client", w.c.pol.Name, "path", display)
		w.c.reply(fmt.Sprintf("%s: Can't open directory: the gateway holds too many directories open. ERROR", display))
		return
	}
	defer w.c.srv.walkFDs.release()
	entries, err := policy.ReadDir(d, w.maxEntries-w.held)
	if errors.Is(err, policy.ErrTooManyEntries) {
		w.failed = true
		w.c.reply(fmt.Sprintf("%s: Directory tree holds more than %d entries at once (max_dir_entries of client %s). ERROR", display, w.maxEntries, w.c.pol.Name))
		return
	}
	if err != nil {
		w.failed = true
		w.c.reply(fmt.Sprintf("%s: Can't open directory: %s. ERROR", display, strerror(err)))
		return
	}
	entries.SortLikeClamd()
	w.depth++
	w.held += entries.Len()
	defer func() { w.depth--; w.held -= entries.Len() }()
	for i := range entries.Len() {
		if w.aborted || (w.stopHit && w.found) || w.ctx.Err() != nil {
			return
		}
		name := entries.Name(i)
		// rel is joined, never cleaned: the kernel resolves it (for a
		// symlink entry) as it resolved the directory.
		w.entry(d, name, display+"/"+name, rel+"/"+name)
	}
}

func (w *walk) entry(d *os.File, name, display, rel string) {
	f, viaLink, err := w.root.OpenEntry(d, name, rel)
	if errors.Is(err, policy.ErrOutsideRoots) {
		w.failed = true
		w.c.srv.Log.Warn("symlink outside roots skipped", "client", w.c.pol.Name, "path", display)
		w.c.reply(fmt.Sprintf("%s: Access denied (symlink leads outside the allowed roots of client %s). ERROR", display, w.c.pol.Name))
		return
	}
	if err != nil {
		// Unlike clamd, a tree with a file the gateway could not read
		// gets no final OK: a client matching "OK$" must not take an
		// unscanned file for a clean one.
		w.failed = true
		msg := "Access denied"
		if !errors.Is(err, os.ErrPermission) {
			msg = "File path check failure: " + strerror(err)
		}
		w.c.reply(fmt.Sprintf("%s: %s. ERROR", display, msg))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		w.failed = true
		w.c.reply(fmt.Sprintf("%s: File path check failure: %s. ERROR", display, strerror(err)))
		return
	}
	switch {
	case fi.Mode().IsRegular():
		w.file(f, display)
	case fi.IsDir() && !viaLink:
		// Directory symlinks are not followed, as in clamd
		// (FollowDirectorySymlinks no): the walk cannot loop.
		w.dir(f, display, rel)
	}
}

// renameReply replaces clamd's "fd[N]" with the client's path.
func renameReply(reply, display string) string {
	if strings.HasPrefix(reply, "fd[") {
		if i := strings.Index(reply, ": "); i >= 0 {
			return display + reply[i:]
		}
	}
	return reply
}

// trimSlashes drops trailing slashes as clamd does before printing a path.
func trimSlashes(p string) string {
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	return p
}

// strerror renders an error the way glibc's strerror does, which is what
// clamd prints: Go's errno texts are the same words, lower-cased.
func strerror(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := errno.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
