// Package pathscan scans a path a client names, file or directory tree,
// confined to one of its policy's roots: the gateway opens every
// directory and file itself, through descriptors beneath the root's
// (openat2 with RESOLVE_BENEATH), never following a link that leads out
// of the roots, and hands clamd only descriptors. It is clamd's SCAN,
// CONTSCAN, MULTISCAN and ALLMATCHSCAN walk, in clamd's order and with
// clamd's reply lines, shared by the fronts that scan paths (the clamd
// protocol and the HTTP front's /scanPath).
package pathscan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// Dispatcher runs scan jobs (scan.Dispatcher).
type Dispatcher interface {
	Do(ctx context.Context, job scan.Job) (scan.Result, error)
}

// Walker runs the walks of one front.
type Walker struct {
	dispatcher Dispatcher
	log        *slog.Logger
	slots      *Slots
}

// NewWalker is a front's walker. slots bounds the directory descriptors
// the walks hold: the gateway hands the fronts one for them all; nil
// gives the walker its own.
func NewWalker(d Dispatcher, log *slog.Logger, slots *Slots) *Walker {
	if slots == nil {
		slots = &Slots{}
	}
	return &Walker{dispatcher: d, log: log, slots: slots}
}

// Request is one path scan.
type Request struct {
	Policy   *policy.Policy
	Identity string // the client certificate's identity, for the audit line
	Protocol string // the front's name, for the audit line
	Path     string // as the client named it
	// StopAtFirst ends the walk at the first infected file (SCAN,
	// ALLMATCHSCAN); OKIfEmpty answers OK for a tree without files
	// (clamd's MULTISCAN prints nothing at all for one).
	StopAtFirst, OKIfEmpty bool
}

// Status is a line's verdict.
type Status int

const (
	OK Status = iota
	Found
	Error
)

// Line is one line of a walk's answer.
type Line struct {
	Path   string // the client's path, or one beneath it
	Status Status
	Text   string // the line clamd would print: "PATH: OK", "PATH: SIG FOUND", "PATH: ... ERROR"
	Threat string // for Found
	// Refused: the policy refuses the path the client named (outside its
	// roots); nothing was scanned.
	Refused bool
	// Unreadable: the gateway could not open or read this path, so it was
	// not scanned (a scan error from clamd is not Unreadable).
	Unreadable bool
	// Err: the engine could not scan; the walk stopped here. Text is
	// empty: how to word it is the front's.
	Err error
}

// walk is one running path scan.
type walk struct {
	*Walker
	ctx     context.Context
	req     Request
	emit    func(Line)
	root    *policy.Root
	found   bool
	failed  bool // a file could not be checked: no "OK" for the tree
	aborted bool // the engine failed: stop the walk
	depth   int  // directories open: one descriptor each
	held    int  // directory entries held, across the open directories
	files   int  // files scanned
	// maxDepth and maxEntries bound what one walk holds (descriptors and
	// listings), whatever tree the client built.
	maxDepth, maxEntries int
}

// Walk scans req.Path and hands each line of the answer to emit, in
// clamd's order.
func (w *Walker) Walk(ctx context.Context, req Request, emit func(Line)) {
	display := trimSlashes(req.Path)
	pol := req.Policy
	root, rel, ok := pol.RootFor(req.Path)
	if !ok {
		emit(Line{Path: display, Status: Error, Refused: true,
			Text: fmt.Sprintf("%s: Access denied (not under an allowed root of client %s). ERROR", display, pol.Name)})
		return
	}
	wk := &walk{Walker: w, ctx: ctx, req: req, emit: emit, root: root}
	wk.maxDepth, wk.maxEntries = pol.WalkLimits()
	wk.top(display, rel)
}

// top scans the path the client named.
func (w *walk) top(display, rel string) {
	f, err := w.root.Open(rel)
	if errors.Is(err, policy.ErrOutsideRoots) {
		w.emit(Line{Path: display, Status: Error, Refused: true,
			Text: fmt.Sprintf("%s: Access denied (symlink leads outside the allowed roots of client %s). ERROR", display, w.req.Policy.Name)})
		return
	}
	if err != nil {
		w.unreadable(display, "File path check failure: "+Strerror(err))
		return
	}
	defer f.Close()
	fi, ok := w.stat(f, display)
	if !ok {
		return
	}
	switch {
	case fi.Mode().IsRegular():
		w.file(f, display)
	case fi.IsDir():
		w.dir(f, display, rel)
		if !w.found && !w.failed && !w.aborted && (w.files > 0 || w.req.OKIfEmpty) {
			w.emit(Line{Path: display, Status: OK, Text: display + ": OK"})
		}
	default:
		// clamd's exact answer for FIFOs, sockets and devices.
		w.emit(Line{Path: display, Status: Error, Unreadable: true, Text: display + ": Not supported file type ERROR"})
		w.emit(Line{Path: display, Status: OK, Text: display + ": OK"})
	}
}

// stat is f's metadata; false once reported as unreadable.
func (w *walk) stat(f *os.File, display string) (os.FileInfo, bool) {
	fi, err := f.Stat()
	if err != nil {
		w.unreadable(display, "File path check failure: "+Strerror(err))
	}
	return fi, err == nil
}

// unreadable reports a path the gateway could not open or read, and keeps
// the tree from its OK.
func (w *walk) unreadable(display, msg string) {
	w.failed = true
	w.emit(Line{Path: display, Status: Error, Unreadable: true, Text: display + ": " + msg + ". ERROR"})
}

// failed reports what could not be checked for another reason than
// reading it, and keeps the tree from its OK.
func (w *walk) fail(display, msg string) {
	w.failed = true
	w.emit(Line{Path: display, Status: Error, Text: display + ": " + msg + ". ERROR"})
}

// file scans one open regular file through the dispatcher.
func (w *walk) file(f *os.File, display string) {
	w.files++
	res, err := w.dispatcher.Do(w.ctx, scan.Job{
		Client: w.req.Policy.Name, Identity: w.req.Identity, Protocol: w.req.Protocol, Kind: scan.File, File: f, Object: display,
	})
	if err != nil {
		w.aborted = true
		w.emit(Line{Path: display, Status: Error, Err: err})
		return
	}
	switch res.Verdict {
	case scan.Infected:
		w.found = true
		w.emit(Line{Path: display, Status: Found, Threat: res.Threat, Text: renameReply(res.Reply, display)})
	case scan.Failed:
		w.failed = true
		w.emit(Line{Path: display, Status: Error, Text: renameReply(res.Reply, display)})
	case scan.Clean:
		if w.depth == 0 { // inside a tree only the tree gets an OK
			w.emit(Line{Path: display, Status: OK, Text: display + ": OK"})
		}
	}
}

// dir walks a directory in clamd's order (see Listing.SortLikeClamd). The
// whole listing is needed for that order, so its size is bounded instead:
// past maxEntries held, or maxDepth levels, the walk fails closed for
// that directory, with an ERROR and no OK for the tree.
func (w *walk) dir(d *os.File, display, rel string) {
	name := w.req.Policy.Name
	if w.depth >= w.maxDepth {
		w.fail(display, fmt.Sprintf("Directory deeper than %d levels (max_walk_depth of client %s)", w.maxDepth, name))
		return
	}
	if !w.slots.acquire() {
		w.log.Warn("walk refused: gateway-wide bound on directory descriptors reached", "client", name, "path", display)
		w.fail(display, "Can't open directory: the gateway holds too many directories open")
		return
	}
	defer w.slots.release()
	entries, err := policy.ReadDir(d, w.maxEntries-w.held)
	if errors.Is(err, policy.ErrTooManyEntries) {
		w.fail(display, fmt.Sprintf("Directory tree holds more than %d entries at once (max_dir_entries of client %s)", w.maxEntries, name))
		return
	}
	if err != nil {
		w.unreadable(display, "Can't open directory: "+Strerror(err))
		return
	}
	entries.SortLikeClamd()
	w.depth++
	w.held += entries.Len()
	defer func() { w.depth--; w.held -= entries.Len() }()
	for i := range entries.Len() {
		if w.aborted || (w.req.StopAtFirst && w.found) || w.ctx.Err() != nil {
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
		w.log.Warn("symlink outside roots skipped", "client", w.req.Policy.Name, "path", display)
		w.unreadable(display, fmt.Sprintf("Access denied (symlink leads outside the allowed roots of client %s)", w.req.Policy.Name))
		return
	}
	if err != nil {
		// Unlike clamd, a tree with a file the gateway could not read
		// gets no final OK: a client matching "OK$" must not take an
		// unscanned file for a clean one.
		msg := "Access denied"
		if !errors.Is(err, os.ErrPermission) {
			msg = "File path check failure: " + Strerror(err)
		}
		w.unreadable(display, msg)
		return
	}
	defer f.Close()
	fi, ok := w.stat(f, display)
	if !ok {
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

// Strerror renders an error the way glibc's strerror does, which is what
// clamd prints: Go's errno texts are the same words, lower-cased.
func Strerror(err error) string {
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
