package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"clamgate/internal/addr"
	"clamgate/internal/clamd"
	"clamgate/internal/sigdb"
)

const (
	// DefaultDatabaseDir is where Debian's freshclam writes.
	DefaultDatabaseDir = "/var/lib/clamav"
	// defaultEngineClamd is the managed clamd's socket: `clamgate db` asks
	// it what it has loaded when it exists, else deployedEngineClamd, and
	// says nothing when neither does (no engine of clamgate's here).
	defaultEngineClamd  = "unix:/run/clamgate/engine/run/clamd.sock"
	deployedEngineClamd = "unix:/run/clamgate/engine/clamd.sock" // deploy's unit or container

)

type dbOptions struct {
	dir      string
	clamd    string
	explicit bool // --address given: failing to reach it is an error, not a note
	maxAge   time.Duration
	timeout  time.Duration
	json     bool
}

// dbCmd shows what is in the database directory, what clamd has loaded and
// how old it is. A frozen database looks exactly like a healthy one, so
// the exit code (0 fine, 1 stale or clamd behind, 2 error) is meant for
// monitoring as much as the output is meant for people.
func dbCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("db", "")
	var opt dbOptions
	fset.StringVar(&opt.dir, "dir", DefaultDatabaseDir, "signature database `DIR`")
	fset.StringVar(&opt.clamd, "address", defaultEngineClamd, "clamd (or gateway) to ask for its loaded version, at `ADDR`: unix:/path or tcp:host:port")
	renamedFlag(fset, "clamd", "address", stderr)
	fset.DurationVar(&opt.maxAge, "max-age", 24*time.Hour, "warn when the database is older than this (0: never)")
	fset.DurationVar(&opt.timeout, "timeout", 5*time.Second, "how long to wait for clamd")
	fset.BoolVar(&opt.json, "json", false, "print one JSON object, for monitoring")
	if code, ok := parseFlags(fset, args, stdout, stderr); !ok {
		return code
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "clamgate db: unexpected argument %q\n", fset.Arg(0))
		return exitError
	}
	fset.Visit(func(f *flag.Flag) { opt.explicit = opt.explicit || f.Name == "address" || f.Name == "clamd" })
	return runDB(ctx, opt, time.Now(), stdout)
}

// runDB takes now from its caller so that tests can fix the ages it prints.
func runDB(ctx context.Context, opt dbOptions, now time.Time, stdout io.Writer) int {
	r := inspectDB(ctx, opt, now)
	if opt.json {
		writeDBJSON(stdout, r)
	} else {
		writeDBText(stdout, r)
	}
	return r.exitCode()
}

// dbReport is the JSON object of `clamgate db --json`; its field names are
// an interface for monitoring scripts and must not change.
type dbReport struct {
	Status        string      `json:"status"` // "ok", "warning" (exit 1) or "error" (exit 2)
	Error         string      `json:"error,omitempty"`
	Dir           string      `json:"dir"`
	Digest        string      `json:"digest"`
	Version       int         `json:"version"`
	Signatures    int         `json:"signatures"`
	BuildTime     *time.Time  `json:"build_time"`
	AgeSeconds    int64       `json:"age_seconds"`
	MaxAgeSeconds int64       `json:"max_age_seconds"`
	Stale         bool        `json:"stale"`
	ClamdBehind   bool        `json:"clamd_behind"`
	Files         []dbFile    `json:"files"`
	Clamd         *clamdState `json:"clamd"`
	Warnings      []string    `json:"warnings"`

	age    time.Duration
	maxAge time.Duration
	now    time.Time
}

type dbFile struct {
	Name       string     `json:"name"`
	Kind       string     `json:"kind"`
	Container  bool       `json:"container"`
	Size       int64      `json:"size"`
	ModTime    *time.Time `json:"mod_time"`
	Version    int        `json:"version"`
	Signatures int        `json:"signatures"`
	Level      int        `json:"functionality_level"`
	Builder    string     `json:"builder"`
	BuildTime  *time.Time `json:"build_time"`
}

// clamdState is what clamd answered to VERSION. Version is the database
// version in its reply, 0 when it has loaded no daily container.
type clamdState struct {
	Address string `json:"address"`
	Reply   string `json:"reply"`
	Version int    `json:"version"`
	Error   string `json:"error,omitempty"`
}

func inspectDB(ctx context.Context, opt dbOptions, now time.Time) *dbReport {
	r := &dbReport{Status: "ok", Dir: opt.dir, Files: []dbFile{}, Warnings: []string{},
		maxAge: opt.maxAge, MaxAgeSeconds: int64(opt.maxAge / time.Second), now: now}
	snap, err := sigdb.Load(opt.dir)
	if err != nil {
		r.Status, r.Error = "error", err.Error()
		return r
	}
	r.fromSnapshot(snap, now)
	if c := askClamd(ctx, opt); c != nil {
		r.Clamd = c
		r.compareClamd(snap, opt.explicit)
	}
	return r
}

func (r *dbReport) fromSnapshot(s *sigdb.Snapshot, now time.Time) {
	r.Digest, r.Version, r.Signatures = s.Digest, s.Version, s.Signatures
	r.BuildTime, r.age = utc(s.BuildTime), s.Age(now)
	r.AgeSeconds = int64(r.age / time.Second)
	for _, f := range s.Files {
		r.Files = append(r.Files, dbFile{Name: f.Name, Kind: f.Kind, Container: f.IsContainer(), Size: f.Size,
			ModTime: utc(f.ModTime), Version: f.Version, Signatures: f.Signatures, Level: f.Level,
			Builder: f.Builder, BuildTime: utc(f.BuildTime)})
	}
	switch {
	case len(s.Files) == 0:
		r.warn("no signature files in %s: clamd will not start without signatures", s.Dir)
	case r.maxAge > 0 && r.age > r.maxAge:
		r.Stale = true
		r.warn("the database is %s old, more than %s: is freshclam running?", fmtAge(r.age), fmtLimit(r.maxAge))
	}
}

func socketExists(address string) bool {
	a, err := addr.Parse(address)
	if err != nil || a.Path() == "" {
		return true // tcp: ask (a malformed address fails when asked)
	}
	_, err = os.Stat(a.Path())
	return !errors.Is(err, fs.ErrNotExist)
}

// askClamd returns nil when no clamd was named and the managed engine's
// socket does not exist: most machines have no managed engine.
func askClamd(ctx context.Context, opt dbOptions) *clamdState {
	if !opt.explicit {
		if !socketExists(opt.clamd) && opt.clamd == defaultEngineClamd {
			opt.clamd = deployedEngineClamd
		}
		if !socketExists(opt.clamd) {
			return nil
		}
	}
	st := &clamdState{Address: opt.clamd}
	c, err := clamd.New(opt.clamd, opt.timeout)
	if err == nil {
		st.Reply, err = c.Command(ctx, "VERSION")
	}
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Version = replyVersion(st.Reply)
	return st
}

// replyVersion reads the database version out of "ClamAV 1.4.6/27100/Wed
// Nov 25 18:38:12 2026"; clamd without a daily database says only
// "ClamAV 1.4.6".
func replyVersion(reply string) int {
	fields := strings.Split(reply, "/")
	if len(fields) < 2 {
		return 0
	}
	v, _ := strconv.Atoi(strings.TrimSpace(fields[1]))
	return v
}

// compareClamd compares clamd's version with the daily container on disk,
// the only one clamd reports; without a daily there is nothing to compare.
func (r *dbReport) compareClamd(s *sigdb.Snapshot, explicit bool) {
	c := r.Clamd
	if c.Error != "" {
		if explicit {
			r.Status, r.Error = "error", "clamd "+c.Address+": "+c.Error
		}
		return
	}
	daily, ok := s.Daily()
	switch {
	case !ok || c.Version == daily.Version:
	case c.Version < daily.Version:
		r.ClamdBehind = true
		r.warn("clamd has loaded an older database: version %d, %d on disk (it reloads at its next SelfCheck, or on RELOAD)", c.Version, daily.Version)
	default:
		r.ClamdBehind = true
		r.warn("clamd has loaded a different database: version %d, %d on disk (is it reading another directory?)", c.Version, daily.Version)
	}
}

func (r *dbReport) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
	if r.Status == "ok" {
		r.Status = "warning"
	}
}

func (r *dbReport) exitCode() int {
	switch r.Status {
	case "ok":
		return 0
	case "warning":
		return 1
	}
	return exitError
}

func utc(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func writeDBJSON(w io.Writer, r *dbReport) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
}

const textTime = "2006-01-02 15:04 UTC"

func writeDBText(w io.Writer, r *dbReport) {
	if r.Error != "" && r.Digest == "" { // the directory could not be read at all
		fmt.Fprintf(w, "ERROR: %s\n", r.Error)
		return
	}
	fmt.Fprintf(w, "database %s (digest %s)\n", r.Dir, r.Digest)
	writeDBFiles(w, r)
	writeDBTotal(w, r)
	if c := r.Clamd; c != nil {
		if c.Error != "" {
			fmt.Fprintf(w, "clamd %s: not answering: %s\n", c.Address, c.Error)
		} else {
			fmt.Fprintf(w, "clamd %s: %s\n", c.Address, c.Reply)
		}
	}
	for _, msg := range r.Warnings {
		fmt.Fprintln(w, "WARNING:", msg)
	}
	if r.Error != "" {
		fmt.Fprintln(w, "ERROR:", r.Error)
	}
}

func writeDBFiles(w io.Writer, r *dbReport) {
	if len(r.Files) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tKIND\tVERSION\tSIGNATURES\tBUILT\tAGE")
	loose := false
	for _, f := range r.Files {
		version, when := "-", f.ModTime
		if f.Container {
			version, when = strconv.Itoa(f.Version), f.BuildTime
		} else {
			loose = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", f.Name, f.Kind, version, f.Signatures, fmtTime(when), fmtAge(r.since(when)))
	}
	tw.Flush()
	if loose {
		fmt.Fprintln(w, "(loose files have no header: BUILT is their modification time)")
	}
}

func writeDBTotal(w io.Writer, r *dbReport) {
	version := "none (no container)"
	if r.Version != 0 {
		version = strconv.Itoa(r.Version)
	}
	built := "build time unknown"
	if r.BuildTime != nil {
		built = fmt.Sprintf("built %s, %s old", fmtTime(r.BuildTime), fmtAge(r.age))
	}
	fmt.Fprintf(w, "total: %d signatures in %d files, version %s, %s\n", r.Signatures, len(r.Files), version, built)
}

func (r *dbReport) since(t *time.Time) time.Duration {
	if t == nil {
		return 0
	}
	return r.now.Sub(*t)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(textTime)
}

// fmtLimit prints --max-age as it was most likely typed ("24h", "90m").
func fmtLimit(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// fmtAge is coarse on purpose: a database is hours or days old, and
// seconds would only make the column noisy.
func fmtAge(d time.Duration) string {
	if d < 0 {
		return "-" + fmtAge(-d) // a clock that disagrees with the build host's
	}
	days, hours, mins := int(d/(24*time.Hour)), int(d/time.Hour)%24, int(d/time.Minute)%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh%02dm", hours, mins)
	}
	return fmt.Sprintf("%dm", mins)
}
