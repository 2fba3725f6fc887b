package clamdproto

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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
	opener  *policy.Opener
	stopHit bool // SCAN stops at the first infected file
	found   bool
	failed  bool // a file could not be checked: no "OK" for the tree
	aborted bool // the engine failed: stop the walk
	depth   int
	files   int // files scanned
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
	opener, err := policy.OpenRoot(root)
	if err != nil {
		c.reply(fmt.Sprintf("%s: File path check failure: %s. ERROR", display, strerror(err)))
		return
	}
	defer opener.Close()
	// ALLMATCHSCAN walks a tree like SCAN: clamd stops at the first
	// infected file (all matches apply within a file).
	w := &walk{c: c, ctx: ctx, opener: opener, stopHit: cmd.Name == CmdScan || cmd.Name == CmdAllMatchScan,
		okIfEmpty: cmd.Name != CmdMultiScan}
	w.top(cmd, display, rel)
}

// top scans the path the client named.
func (w *walk) top(cmd Command, display, rel string) {
	f, err := w.opener.Open(rel)
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
		Client: w.c.pol.Name, Protocol: "clamd", Kind: scan.File, File: f, Object: display,
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

// dir walks a directory in clamd's order: files before subdirectories,
// each group by inode number (clamd sorts this way for disk locality).
func (w *walk) dir(d *os.File, display, rel string) {
	entries, err := d.ReadDir(-1)
	if err != nil {
		w.failed = true
		w.c.reply(fmt.Sprintf("%s: Can't open directory: %s. ERROR", display, strerror(err)))
		return
	}
	sortLikeClamd(entries)
	w.depth++
	defer func() { w.depth-- }()
	for _, e := range entries {
		if w.aborted || (w.stopHit && w.found) || w.ctx.Err() != nil {
			return
		}
		w.entry(e, display+"/"+e.Name(), filepath.Join(rel, e.Name()))
	}
}

func (w *walk) entry(e os.DirEntry, display, rel string) {
	f, err := w.opener.Open(rel)
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
	case fi.IsDir() && e.Type()&os.ModeSymlink == 0:
		// Directory symlinks are not followed, as in clamd
		// (FollowDirectorySymlinks no): the walk cannot loop.
		w.dir(f, display, rel)
	}
}

func sortLikeClamd(entries []os.DirEntry) {
	ino := func(e os.DirEntry) uint64 {
		if fi, err := e.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				return st.Ino
			}
		}
		return 0
	}
	keys := make(map[string]uint64, len(entries))
	for _, e := range entries {
		keys[e.Name()] = ino(e)
	}
	sort.SliceStable(entries, func(i, j int) bool {
		di, dj := entries[i].IsDir(), entries[j].IsDir()
		if di != dj {
			return !di
		}
		return keys[entries[i].Name()] < keys[entries[j].Name()]
	})
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
