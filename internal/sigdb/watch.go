package sigdb

import (
	"cmp"
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher reports a database that changed, once the change is complete.
// freshclam downloads into temporary files (and a tmp.* directory) and
// renames them into place, one database after another; reloading clamd at
// the first event would load half an update and then reload again. So the
// watcher waits until the directory has been quiet for Settle and holds no
// temporary files, and reports only when the Digest really changed.
type Watcher struct {
	Dir    string
	Settle time.Duration
	Log    *slog.Logger
	// Poll re-reads the directory this often even without events, in case
	// inotify misses one (the directory replaced, an overflow).
	Poll time.Duration
	// Stirred, when set, is called at every event, before the change is
	// complete: what depends on the database's identity stops trusting it
	// at once, while clamd may already be loading the new files.
	Stirred func()
	// Unchanged, when set, is called when the directory, once quiet, holds
	// the database last accepted.
	Unchanged func()
}

// Run calls changed with each new snapshot whose digest differs from the
// last one accepted (starting with last), until ctx ends. changed returns
// false when it could not act on the snapshot (clamd did not reload): the
// same change is then offered again at the next event or poll.
func (w *Watcher) Run(ctx context.Context, last string, changed func(*Snapshot) bool) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	if err := fw.Add(w.Dir); err != nil {
		return err
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	poll := time.NewTicker(cmp.Or(w.Poll, time.Minute))
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			w.Log.Debug("database directory changed", "event", ev.String())
			w.stirred()
			settle.Reset(w.Settle)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.Log.Warn("watching the database", "dir", w.Dir, "err", err)
			w.stirred()
			settle.Reset(w.Settle)
		case <-poll.C:
			last = w.check(last, changed, settle)
		case <-settle.C:
			last = w.check(last, changed, settle)
		}
	}
}

// check loads the directory when no update is in progress, and reports it
// if it changed; otherwise it looks again after Settle.
func (w *Watcher) check(last string, changed func(*Snapshot) bool, settle *time.Timer) string {
	if busy, name := updating(w.Dir); busy {
		w.Log.Debug("database update in progress", "file", name)
		settle.Reset(w.Settle)
		return last
	}
	snap, err := Load(w.Dir)
	if err != nil {
		// A header read while a file is being replaced can be torn.
		w.Log.Warn("database unreadable, looking again", "err", err)
		settle.Reset(w.Settle)
		return last
	}
	if snap.Digest == last {
		if w.Unchanged != nil {
			w.Unchanged()
		}
		return last
	}
	w.stirred()
	if !changed(snap) {
		return last
	}
	return snap.Digest
}

func (w *Watcher) stirred() {
	if w.Stirred != nil {
		w.Stirred()
	}
}

// updating reports a temporary file or directory, left while freshclam (or
// an administrator's copy) is at work.
func updating(dir string) (bool, string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, ""
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "tmp") || strings.HasSuffix(n, ".tmp") || strings.HasSuffix(n, ".part") ||
			strings.HasPrefix(n, "clamav-") || strings.HasSuffix(n, "~") {
			return true, n
		}
	}
	return false, ""
}
