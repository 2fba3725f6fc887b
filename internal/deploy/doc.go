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
// Memory sizing of the engine (MemoryHigh, MemoryMax): see sigdb.Memory.
package deploy
