package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/renameio/v2"
)

// BackupDir holds one directory per apply, under the root.
const BackupDir = "/var/lib/clamgate/backup"

// Manifest records what one apply found before it wrote, so that rollback
// can put it back. It is written before the first change: an interrupted
// apply can be rolled back too.
type Manifest struct {
	Created time.Time `json:"created"`
	Status  string    `json:"status"` // "applying", then "applied"
	Entries []Entry   `json:"entries"`
	Dirs    []string  `json:"created_dirs"` // directories apply created, parents first
}

// Entry is one path's state before apply.
type Entry struct {
	Path    string `json:"path"`
	Prior   string `json:"prior"` // "absent", "file" or "symlink"
	Mode    uint32 `json:"mode,omitempty"`
	UID     int    `json:"uid,omitempty"`
	GID     int    `json:"gid,omitempty"`
	Link    string `json:"link,omitempty"`
	Backup  string `json:"backup,omitempty"` // the saved copy, relative to the backup directory
	Written string `json:"written_sha256,omitempty"`
}

// Apply writes the plan's changes and returns the backup directory ("" if
// there was nothing to change).
func Apply(p *Plan, now time.Time, log *slog.Logger) (string, error) {
	if len(p.Changes) == 0 {
		return "", nil
	}
	root := p.Host.Root
	dir := filepath.Join(root, BackupDir, now.UTC().Format("20060102T150405.000000000Z"))
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		return "", err
	}
	m := &Manifest{Created: now.UTC(), Status: "applying", Dirs: missingDirs(root, p.Changes)}
	for _, c := range p.Changes {
		e, err := saveEntry(root, dir, c)
		if err != nil {
			return "", err
		}
		m.Entries = append(m.Entries, e)
	}
	if err := writeManifest(dir, m); err != nil {
		return "", err
	}
	for _, d := range m.Dirs {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return dir, err
		}
	}
	for i, c := range p.Changes {
		if err := write(filepath.Join(root, c.Path), c, m.Entries[i]); err != nil {
			return dir, fmt.Errorf("%s: %w (roll back with clamgate deploy rollback)", c.Path, err)
		}
		done := "deploy: written"
		if c.Remove {
			done = "deploy: removed"
		}
		log.Info(done, "path", c.Path, "why", c.Why)
	}
	m.Status = "applied"
	return dir, writeManifest(dir, m)
}

// missingDirs are the parents apply must create, shallowest first.
func missingDirs(root string, changes []Change) []string {
	var dirs []string
	for _, c := range changes {
		if c.Remove {
			continue
		}
		for d := path.Dir(c.Path); d != "/"; d = path.Dir(d) {
			if _, err := os.Lstat(filepath.Join(root, d)); errors.Is(err, fs.ErrNotExist) && !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	slices.SortFunc(dirs, func(a, b string) int {
		if n := strings.Count(a, "/") - strings.Count(b, "/"); n != 0 {
			return n
		}
		return strings.Compare(a, b)
	})
	return dirs
}

func saveEntry(root, dir string, c Change) (Entry, error) {
	e := Entry{Path: c.Path, Prior: "absent"}
	if c.Link == "" && !c.Remove {
		e.Written = sum(c.Content)
	}
	tp := filepath.Join(root, c.Path)
	fi, err := os.Lstat(tp)
	if errors.Is(err, fs.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return e, err
	}
	e.Mode = uint32(fi.Mode().Perm())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Prior = "symlink"
		e.Link, err = os.Readlink(tp)
		return e, err
	case fi.Mode().IsRegular():
		e.Prior, e.Backup = "file", path.Join("files", c.Path)
		src, err := os.ReadFile(tp)
		if err != nil {
			return e, err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, e.Backup)), 0o700); err != nil {
			return e, err
		}
		return e, os.WriteFile(filepath.Join(dir, e.Backup), src, 0o600)
	}
	return e, fmt.Errorf("%s: neither a file nor a symlink, not replacing it", c.Path)
}

// write keeps an edited file's mode and owner; new files are root's, 0644.
func write(tp string, c Change, prior Entry) error {
	if c.Remove {
		return os.Remove(tp)
	}
	if c.Link != "" {
		return renameio.Symlink(c.Link, tp)
	}
	mode, uid, gid := c.Mode, 0, 0
	if prior.Prior == "file" {
		mode, uid, gid = fs.FileMode(prior.Mode), prior.UID, prior.GID
	}
	return writeFile(tp, c.Content, mode, uid, gid)
}

func writeFile(tp string, data []byte, mode fs.FileMode, uid, gid int) error {
	f, err := renameio.NewPendingFile(tp, renameio.WithStaticPermissions(mode))
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	return f.CloseAtomicallyReplace()
}

func writeManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return renameio.WriteFile(filepath.Join(dir, "manifest.json"), append(b, '\n'), 0o600)
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Rollback undoes every apply not yet rolled back, newest first, and
// returns their backup directories. Run again, it finds nothing to undo.
func Rollback(root string, log *slog.Logger) ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(root, BackupDir, "*", "manifest.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(dirs)
	slices.Reverse(dirs)
	var done []string
	for _, mf := range dirs {
		dir := filepath.Dir(mf)
		if err := rollbackOne(root, dir, log); err != nil {
			return done, fmt.Errorf("%s: %w", dir, err)
		}
		done = append(done, dir)
	}
	return done, nil
}

func rollbackOne(root, dir string, log *slog.Logger) error {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for _, e := range slices.Backward(m.Entries) {
		if err := restore(root, dir, e, log); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	for _, d := range slices.Backward(m.Dirs) {
		if err := os.Remove(filepath.Join(root, d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("deploy: directory not empty, left in place", "dir", d, "err", err)
		}
	}
	return os.Rename(filepath.Join(dir, "manifest.json"), filepath.Join(dir, "manifest.rolled-back.json"))
}

func restore(root, dir string, e Entry, log *slog.Logger) error {
	tp := filepath.Join(root, e.Path)
	if e.Written != "" {
		if cur, err := os.ReadFile(tp); err == nil && sum(cur) != e.Written {
			log.Warn("deploy: changed since apply; restoring the original anyway", "path", e.Path)
		}
	}
	log.Info("deploy: restoring", "path", e.Path, "prior", e.Prior)
	switch e.Prior {
	case "absent":
		if err := os.Remove(tp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	case "symlink":
		return renameio.Symlink(e.Link, tp)
	case "file":
		src, err := os.ReadFile(filepath.Join(dir, e.Backup))
		if err != nil {
			return err
		}
		return writeFile(tp, src, fs.FileMode(e.Mode), e.UID, e.GID)
	}
	return fmt.Errorf("unknown prior state %q", e.Prior)
}
