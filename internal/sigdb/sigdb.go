// Package sigdb describes what is in a ClamAV database directory: each
// signature file with its version, signature count and build time, the
// totals, how old the database is, and a digest that changes whenever the
// files change.
//
// It exists because the gateway must know these things without asking
// anyone. sigtool is not always installed next to clamd, it writes for
// humans, and it loads and verifies whole databases, which costs seconds and
// hundreds of MiB; clamd tells only the daily version it has loaded, not
// what is on disk. The watcher that reloads clamd after freshclam calls Load
// on every inotify event, so Load reads only the 512-byte header of each
// container and streams the loose text files once, never holding one in
// memory, and verifies nothing: clamd checks signatures when it loads them.
package sigdb

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File is one signature file of a database directory.
type File struct {
	Name    string // base name
	Kind    string // "cvd", "cld", "cud" (containers) or the loose file's extension ("hdb", "ndb", ...), lower case
	Size    int64
	ModTime time.Time

	// Containers only, from the header (for loose files Signatures is counted).
	BuildTime  time.Time // the header's unix time when present, else its human-readable build time
	Version    int
	Signatures int
	Level      int // functionality level: the oldest engine that can load the file
	Builder    string
}

// IsContainer tells a signed (or sigtool --unsigned) container from a
// loose file.
func (f File) IsContainer() bool { return countingFor(f.Kind) == container }

// Snapshot is a database directory at one moment.
type Snapshot struct {
	Dir        string
	Files      []File // signature files only, sorted by name
	Signatures int
	// Version is the daily container's, the number clamd reports in
	// VERSION; without a daily, the highest container version; else 0.
	Version int
	// BuildTime is that of the newest container; without containers, the
	// newest modification time of a loose file.
	BuildTime time.Time
	// Digest is a short hex digest of every file's name, size, modification
	// time and version: equal digests mean nothing on disk changed.
	Digest string
}

// Load describes the database in dir. An empty directory is an empty
// Snapshot; a missing or unreadable directory, an unreadable file or a
// corrupt container header is an error that names the file.
func Load(dir string) (*Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sigdb: %w", err)
	}
	s := &Snapshot{Dir: dir}
	for _, e := range entries {
		f, ok, err := loadFile(dir, e.Name())
		if err != nil {
			return nil, fmt.Errorf("sigdb: %s: %w", filepath.Join(dir, e.Name()), err)
		}
		if ok {
			s.Files = append(s.Files, f)
		}
	}
	sort.Slice(s.Files, func(i, j int) bool { return s.Files[i].Name < s.Files[j].Name })
	s.summarize()
	return s, nil
}

// loadFile describes one directory entry; ok is false for what clamd would
// not load: hidden and temporary files (freshclam writes and renames),
// directories (freshclam's tmp.* work area) and other extensions.
func loadFile(dir, name string) (f File, ok bool, err error) {
	kind := kindOf(name)
	how := countingFor(kind)
	if how == notSignatures || strings.HasPrefix(name, ".") {
		return File{}, false, nil
	}
	path := filepath.Join(dir, name)
	fi, err := os.Stat(path) // follows symlinks, as clamd does
	ok = err == nil && fi.Mode().IsRegular()
	if ok {
		f, err = describe(path, how)
		f.Name, f.Kind, f.Size, f.ModTime = name, kind, fi.Size(), fi.ModTime()
	}
	if errors.Is(err, fs.ErrNotExist) { // renamed away since ReadDir: freshclam at work
		return File{}, false, nil
	}
	return f, ok && err == nil, err
}

func describe(path string, how counting) (File, error) {
	if how == container {
		return readHeader(path)
	}
	n, err := countFile(path, how)
	return File{Signatures: n}, err
}

func kindOf(name string) string {
	return strings.ToLower(strings.TrimPrefix(filepath.Ext(name), "."))
}

func readHeader(path string) (File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer fh.Close()
	b := make([]byte, HeaderSize)
	n, err := io.ReadFull(fh, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return File{}, err
	}
	return ParseHeader(b[:n])
}

func (s *Snapshot) summarize() {
	var newestBuild, newestMod time.Time
	skip := shadowed(s.Files)
	for i, f := range s.Files {
		if !skip[i] {
			s.Signatures += f.Signatures
		}
		if f.IsContainer() {
			newestBuild = later(newestBuild, f.BuildTime)
		} else {
			newestMod = later(newestMod, f.ModTime)
		}
	}
	if v := s.versionFile(); v != nil {
		s.Version = v.Version
	}
	s.BuildTime = newestBuild
	if s.BuildTime.IsZero() {
		s.BuildTime = newestMod
	}
	s.Digest = digest(s.Files)
}

// shadowed marks the containers clamd skips: of a daily.cvd and a
// daily.cld side by side (a failed or interrupted freshclam), clamd loads
// only the newer, so the older must not count twice.
func shadowed(files []File) map[int]bool {
	newest := map[string]int{} // base name -> index of its newest container
	skip := map[int]bool{}
	for i, f := range files {
		if !f.IsContainer() {
			continue
		}
		j, seen := newest[f.base()]
		switch {
		case !seen:
			newest[f.base()] = i
		case f.Version > files[j].Version:
			skip[j], newest[f.base()] = true, i
		default:
			skip[i] = true
		}
	}
	return skip
}

func (f File) base() string { return strings.TrimSuffix(f.Name, filepath.Ext(f.Name)) }

// Daily is the daily container clamd takes its VERSION from (the newer of
// daily.cvd, daily.cld and daily.cud); ok is false when there is none, and
// clamd then reports no database version at all.
func (s *Snapshot) Daily() (f File, ok bool) {
	if v := s.versionFile(); v != nil && v.base() == "daily" {
		return *v, true
	}
	return File{}, false
}

// versionFile is the container whose version clamd reports: the daily one
// (clamd takes the version from files named "daily.*"), else, so that a
// private database still has a version, the highest; nil without
// containers.
func (s *Snapshot) versionFile() *File {
	var best *File
	for i := range s.Files {
		f := &s.Files[i]
		if !f.IsContainer() {
			continue
		}
		daily, bestDaily := f.base() == "daily", best != nil && best.base() == "daily"
		if best == nil || daily && !bestDaily || daily == bestDaily && f.Version > best.Version {
			best = f
		}
	}
	return best
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// digest covers what freshclam changes when it updates a file (it writes a
// new file and renames it over the old one), from stat and header alone, so
// that comparing digests never costs more than the Load that made them.
func digest(files []File) string {
	h := sha256.New()
	var num [8]byte
	for _, f := range files {
		io.WriteString(h, f.Name)
		h.Write([]byte{0})
		for _, v := range []int64{f.Size, f.ModTime.UnixNano(), int64(f.Version)} {
			binary.BigEndian.PutUint64(num[:], uint64(v))
			h.Write(num[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Age is how old the database is at now; 0 when its build time is unknown.
func (s *Snapshot) Age(now time.Time) time.Duration {
	if s.BuildTime.IsZero() {
		return 0
	}
	return now.Sub(s.BuildTime)
}

// ctimeLayout is C's ctime(), which clamd uses for the time in VERSION.
const ctimeLayout = "Mon Jan _2 15:04:05 2006"

// VersionString is the suffix clamd appends to its VERSION reply
// ("27100/Mon Nov 23 09:10:00 2026": the daily version and its build time
// in local time, as ctime prints it), so that the gateway can answer
// VERSION the way clamd would; "" when Version is 0.
func (s *Snapshot) VersionString() string {
	if s.Version == 0 {
		return ""
	}
	built := s.BuildTime
	if v := s.versionFile(); v != nil && v.Version == s.Version {
		built = v.BuildTime
	}
	return fmt.Sprintf("%d/%s", s.Version, built.Local().Format(ctimeLayout))
}
