package tlsid

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long the files must stay quiet before they are re-read:
// certbot and cert-manager write the certificate and the key one after
// the other, and reading between the two would pair a new certificate with
// an old key (refused, but logged as an error for nothing).
const settle = 300 * time.Millisecond

// Watcher re-reads the stores whose files' directories change.
// Directories are watched, not files: a rotation tool or an editor
// replaces a file by renaming a new one over it, which a watch on the old
// inode would never see.
type Watcher struct {
	w    *fsnotify.Watcher
	log  *slog.Logger
	mu   sync.Mutex
	dirs map[string]bool
}

// NewWatcher starts watching nothing; Watch adds the stores' directories.
func NewWatcher(log *slog.Logger) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &Watcher{w: w, log: log, dirs: map[string]bool{}}, nil
}

// Watch adds the directories of the stores' files.
func (w *Watcher) Watch(stores ...*Store) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range stores {
		for _, f := range []string{s.files.Cert, s.files.Key, s.files.CA} {
			if dir := filepath.Dir(f); f != "" && !w.dirs[dir] {
				if err := w.w.Add(dir); err != nil {
					w.log.Warn("TLS files will be re-read on SIGHUP only: cannot watch their directory", "dir", dir, "err", err)
					continue
				}
				w.dirs[dir] = true
			}
		}
	}
}

// Run re-reads stores() after a change, until ctx ends, then closes the
// watcher.
func (w *Watcher) Run(ctx context.Context, stores func() []*Store) {
	defer w.w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.w.Events:
			timer.Reset(settle)
		case err := <-w.w.Errors:
			w.log.Warn("watching TLS files", "err", err)
		case <-timer.C:
			ReloadAll(w.log, stores()...)
		}
	}
}

// ReloadAll re-reads stores (on SIGHUP and on a change), logging each
// refusal; a store whose files did not change reads the same material.
func ReloadAll(log *slog.Logger, stores ...*Store) {
	for _, s := range stores {
		before := s.cur.Load()
		if err := s.Reload(); err != nil {
			log.Error("TLS files refused: the previous certificate stays in use", "for", s.Name, "err", err)
			continue
		}
		if after := s.cur.Load(); !before.leaf.Equal(after.leaf) || !before.pool.Equal(after.pool) {
			log.Info("TLS material reloaded", "for", s.Name, "subject", after.leaf.Subject.String(), "not_after", after.leaf.NotAfter)
		}
	}
}
