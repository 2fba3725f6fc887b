package config

import (
	"cmp"
	"path/filepath"
	"runtime"
	"time"
)

// Database is the signature database the gateway watches, and how clamd
// is made to load a new one.
type Database struct {
	Dir    string        // "" = the managed clamd's, or none
	Watch  bool          // reload clamd when Dir changes
	Reload string        // "auto", "frugal" or "concurrent"
	Settle time.Duration // quiet time after the last change before reloading
	MaxAge time.Duration // older than this, the gateway warns
	// Stagger is "kubernetes": a reload that holds scans first takes a
	// Lease, so that no two pods of a pool hold theirs at once; "" = off.
	Stagger            string
	StaggerLease       string        // the Lease's name
	StaggerWait        time.Duration // longest wait for the Lease before reloading anyway
	StaggerUnready     time.Duration // /readyz false this long before scans are held
	StaggerCredentials string        // the service account's directory (token, ca.crt, namespace)
}

type databaseSection struct {
	Dir    string   `toml:"dir,omitempty"`
	Watch  *bool    `toml:"watch"`
	Reload string   `toml:"reload"`
	Settle Duration `toml:"settle"`
	MaxAge Duration `toml:"max_age"`

	Stagger            string   `toml:"stagger,omitempty"`
	StaggerLease       string   `toml:"stagger_lease,omitempty"`
	StaggerWait        Duration `toml:"stagger_wait,omitempty"`
	StaggerUnready     Duration `toml:"stagger_unready,omitempty"`
	StaggerCredentials string   `toml:"stagger_credentials,omitempty"`
}

// Defaults of [database].
const (
	DefaultSettle = 2 * time.Second
	DefaultMaxAge = 24 * time.Hour

	DefaultStaggerLease       = "clamgate-reload"
	DefaultStaggerWait        = 15 * time.Minute
	DefaultStaggerUnready     = 5 * time.Second
	DefaultStaggerCredentials = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// database applies the defaults: a managed clamd's own database is watched
// unless the file says otherwise, an external clamd's only when its
// directory is named; either is reloaded in the "auto" mode, concurrent
// when memory allows, else frugal (see engine.ReloadMode).
func (v *validator) database(s databaseSection, eng *Engine) Database {
	d := Database{Dir: s.Dir, Watch: s.Watch == nil || *s.Watch, Reload: s.Reload, Settle: s.Settle.Or(DefaultSettle), MaxAge: s.MaxAge.Or(DefaultMaxAge)}
	if d.Reload == "" {
		d.Reload = "auto"
	}
	v.oneOf("database.reload", d.Reload, "auto", "frugal", "concurrent")
	if d.Dir != "" && !filepath.IsAbs(d.Dir) {
		v.fail("database.dir", "%q is not an absolute path", d.Dir)
	}
	v.stagger(&d, s)
	if eng != nil {
		eng.Reload = d.Reload
		if d.Dir != "" && eng.Database == "" {
			eng.Database = d.Dir
		}
	}
	return d
}

// ScanSlots is how many scans the gateway runs at clamd at once. Measured
// on clamd 1.4.6 (MaxThreads 2, two 8 MB scans running): PING took 8.6 s,
// VERSION 9.1 s and STATS 30 s, because clamd answers them from its
// thread pool too. One thread is therefore kept free of scans, so that
// health checks and control never queue behind them.
func (c *Config) ScanSlots() int {
	return max(1, c.MaxJobs-1)
}

// jobs sizes the dispatcher from clamd's thread pool: more concurrent
// scans than clamd has threads would only queue inside clamd, where no
// client's share can be enforced.
func (v *validator) jobs(cfg *Config, b backendSection) {
	cfg.MaxJobs = b.MaxJobs
	if cfg.MaxJobs == 0 {
		cfg.MaxJobs = defaultMaxJobs(cfg.Engine)
	}
	cfg.Reserve = min(1, cfg.ScanSlots()-1)
	if b.Reserve != nil {
		cfg.Reserve = *b.Reserve
	}
	cfg.BulkSize = int64(b.BulkSize)
	cfg.BulkCap = b.BulkCap
	if cfg.BulkCap == 0 {
		cfg.BulkCap = max(1, runtime.NumCPU()-1) // one core kept for short scans
	}
	if cfg.BulkCap < 0 {
		v.fail("backend.bulk_cap", "must not be negative")
	}
	if cfg.MaxJobs < 1 {
		v.fail("backend.max_jobs", "%d: must be at least 1 (clamd's MaxThreads)", cfg.MaxJobs)
	} else if cfg.Reserve < 0 || cfg.Reserve >= cfg.ScanSlots() {
		v.fail("backend.reserve", "%d: must be between 0 and %d (the scan slots, max_jobs - 1, minus one)", cfg.Reserve, cfg.ScanSlots()-1)
	}
}

// defaultMaxJobs is the managed clamd's MaxThreads, else clamd's default.
func defaultMaxJobs(eng *Engine) int {
	if eng != nil {
		return eng.MaxThreads
	}
	return 10
}

// stagger applies [database] stagger's defaults; they mean nothing while
// it is off.
func (v *validator) stagger(d *Database, s databaseSection) {
	v.oneOf("database.stagger", s.Stagger, "", "kubernetes")
	if s.Stagger == "" {
		return
	}
	d.Stagger = s.Stagger
	d.StaggerLease = cmp.Or(s.StaggerLease, DefaultStaggerLease)
	d.StaggerWait = s.StaggerWait.Or(DefaultStaggerWait)
	d.StaggerUnready = s.StaggerUnready.Or(DefaultStaggerUnready)
	d.StaggerCredentials = cmp.Or(s.StaggerCredentials, DefaultStaggerCredentials)
	if !filepath.IsAbs(d.StaggerCredentials) {
		v.fail("database.stagger_credentials", "%q is not an absolute path", d.StaggerCredentials)
	}
}
