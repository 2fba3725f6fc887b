// Package deploy turns a host running one clamd per client into one
// running a single sandboxed clamd behind clamgate, and back.
//
// It works on a directory tree standing for the host (Options.Root; "/" in
// production), so that tests and image builds run it on a fake /etc: it
// inspects the tree (Inspect), computes every file and unit mask it wants
// (Build), prints them as unified diffs (Plan.Write), writes them with a
// backup and a JSON manifest (Apply) and undoes the newest applied manifest
// (Rollback). It never runs systemctl or podman itself: what to run after
// an apply is printed, so that the same code is safe on a tree that is not
// the running system.
//
// Diffs come from github.com/aymanbagabas/go-udiff, a maintained extraction
// of the Go team's own diff code used by gopls; writing one here would only
// add code to test.
//
// Memory sizing of the engine (see Memory): clamd's resident size after
// loading is about four times the size of the database files on disk
// (961 MiB resident for ~240 MiB of main/daily/bytecode files on the
// reference host of the article, 656 MiB for a 3.4 M-signature synthetic
// database here). With loaded = max(4 x disk, 256 MiB) (1 GiB when no
// database is present yet), MemoryHigh = 1.5 x loaded and MemoryMax =
// 2 x loaded, rounded up to 64 MiB: the frugal reload keeps one database
// in memory, so 1.5x leaves room for scan buffers before throttling, and
// 2x still survives a reload in clamd's concurrent mode if somebody turns
// it back on.
package deploy
