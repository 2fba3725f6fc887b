package gateway

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/scan"
	"clamgate/internal/sigdb"
)

// lifecycle keeps clamd's database current and visible: it reloads clamd
// when the directory changes, logs the database's age at start and on
// every reload, and warns while it is older than max_age, because a frozen
// database looks exactly like a healthy one.
type lifecycle struct {
	cfg      config.Database
	dir      string
	reloader *dbReload
	log      *slog.Logger
	loaded   atomic.Pointer[sigdb.Snapshot] // what clamd was last told to load
	tag      atomic.Pointer[string]         // its ISTag, made once: every ICAP response carries it
	// reloading is held while a reload runs, so that the watcher's and
	// SELFCHECK's never overlap; base is the gateway's life, which a
	// reload SELFCHECK started outlives the request by.
	reloading sync.Mutex
	base      context.Context
	// cache serves verdicts only while the gateway knows which database
	// clamd runs: with a watched directory, from the start for the managed
	// clamd (it loaded this directory) and from the first reload for an
	// external one (it may run older files than those the gateway sees);
	// paused at the first change seen. nil: no cache.
	cache    *scan.VerdictCache
	reloaded atomic.Bool // clamd is known to scan with the database last accepted
}

// hold gives the reloads the dispatcher to hold; the dispatcher is made
// after the lifecycle, which hands it the cache.
func (l *lifecycle) hold(d *scan.Dispatcher) {
	if l != nil {
		l.reloader.jobs = d
	}
}

func (l *lifecycle) run(ctx context.Context) {
	snap, err := sigdb.Load(l.dir)
	if err != nil {
		l.log.Error("signature database unreadable", "dir", l.dir, "err", err)
		snap = &sigdb.Snapshot{Dir: l.dir}
	}
	l.accept(snap, "start", 0)
	m := l.reloader.current()
	l.log.Info("database reload mode", "mode", m.Name(), "basis", m.Basis, "why", m.Why)
	go l.watchAge(ctx)
	if !l.cfg.Watch {
		l.cacheOff("the gateway does not watch the database ([database] watch = false)")
		return
	}
	w := &sigdb.Watcher{Dir: l.dir, Settle: l.cfg.Settle, Log: l.log, Stirred: l.cache.Pause, Unchanged: l.resume}
	if l.reloader.engine != nil {
		l.reloaded.Store(true) // the gateway started it on this directory
		l.resume()
	} else if l.cache != nil {
		l.log.Info("verdict cache waits for a reload the gateway can follow (reload = \"frugal\"): the external clamd may run older files than " + l.dir)
	}
	if err := w.Run(ctx, snap.Digest, func(s *sigdb.Snapshot) bool { return l.reload(ctx, s) }); err != nil {
		l.log.Error("cannot watch the signature database: clamd reloads only on its own SelfCheck", "dir", l.dir, "err", err)
	}
}

func (l *lifecycle) reload(ctx context.Context, snap *sigdb.Snapshot) bool {
	l.reloading.Lock()
	defer l.reloading.Unlock()
	return l.reloadLocked(ctx, snap)
}

func (l *lifecycle) reloadLocked(ctx context.Context, snap *sigdb.Snapshot) bool {
	if cur := l.loaded.Load(); cur != nil && cur.Digest == snap.Digest && snap.Digest != "" {
		return true // SELFCHECK reloaded it already
	}
	l.log.Info("signature database changed: reloading clamd", "dir", l.dir, "reload", l.cfg.Reload, "signatures", snap.Signatures)
	l.cache.Pause()
	res, err := l.reloader.reload(ctx)
	l.log.Info("database reload mode", "mode", res.mode.Name(), "basis", res.mode.Basis, "restarted", res.restarted, "why", res.mode.Why)
	if err != nil {
		l.log.Error("reload failed: clamd keeps its previous database; will try again", "err", err)
		return false
	}
	l.accept(snap, "reload", res.took)
	l.afterReload(ctx, res)
	return true
}

// afterReload resumes the cache when the gateway knows clamd now scans
// with the new database: the managed clamd was restarted, or reloaded
// with ConcurrentDatabaseReload no (its PONG after RELOAD comes once the
// new database is in), or the administrator says an external clamd does
// (reload = "frugal"). A concurrent reload returns at once while clamd
// still scans with the old database for as long as loading takes: the
// managed clamd's log tells when it switches, and the cache resumes then;
// an external clamd says nothing, and the cache stays paused rather than
// keep verdicts of the old database under the new one.
func (l *lifecycle) afterReload(ctx context.Context, res reloaded) {
	if l.cache == nil {
		if res.stopWaiting != nil {
			res.stopWaiting()
		}
		return
	}
	if res.restarted || res.mode.Frugal && res.mode.Basis != "external" {
		l.reloaded.Store(true)
		l.cache.Resume()
		return
	}
	l.reloaded.Store(false)
	if res.activated == nil {
		l.log.Info("verdict cache paused: after this reload the gateway cannot tell when clamd scans with the new database",
			"mode", res.mode.Name(), "basis", res.mode.Basis)
		return
	}
	l.log.Info("verdict cache paused until clamd activates the new database", "mode", res.mode.Name())
	go l.resumeOnActivation(ctx, res, l.cache.Generation())
}

// resumeOnActivation resumes the cache once clamd has switched to the
// database the reload loaded, unless the directory changed again since
// (the cache's generation moved: a Pause). Bounded by the reload timeout.
func (l *lifecycle) resumeOnActivation(ctx context.Context, res reloaded, gen uint64) {
	defer res.stopWaiting()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(l.reloader.timeout, 10*time.Minute))
	defer cancel()
	select {
	case <-res.activated:
	case <-ctx.Done():
		l.log.Warn("verdict cache stays paused: clamd did not say it activated the new database", "waited", time.Since(start).Round(time.Second))
		return
	}
	l.reloading.Lock()
	defer l.reloading.Unlock()
	if l.cache.ResumeIf(gen) {
		l.reloaded.Store(true)
		l.log.Info("verdict cache serving: clamd activated the new database")
	}
}

// resume lets the cache serve again after a false alarm (the directory
// settled on the database clamd runs), when that database is known: the
// managed clamd loaded it at start, or a reload proved it.
func (l *lifecycle) resume() {
	if l.reloaded.Load() {
		l.cache.Resume()
	}
}

func (l *lifecycle) cacheOff(why string) {
	if l.cache != nil {
		l.log.Info("verdict cache off: "+why, "dir", l.dir)
	}
}

func (l *lifecycle) accept(snap *sigdb.Snapshot, why string, took time.Duration) {
	l.loaded.Store(snap)
	tag := ""
	if snap.Digest != "" {
		tag = fmt.Sprintf(`"CG-%.16s"`, snap.Digest)
	}
	l.tag.Store(&tag)
	args := []any{"dir", snap.Dir, "version", snap.Version, "signatures", snap.Signatures, "files", len(snap.Files),
		"built", snap.BuildTime.UTC().Format(time.RFC3339), "age", age(snap)}
	if why == "reload" {
		args = append(args, "took", took.Round(time.Millisecond))
	}
	l.log.Info("signature database ("+why+")", args...)
	l.checkAge(snap)
}

func (l *lifecycle) watchAge(ctx context.Context) {
	t := time.NewTicker(min(l.cfg.MaxAge/4, time.Hour))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.checkAge(l.loaded.Load())
		}
	}
}

func (l *lifecycle) checkAge(snap *sigdb.Snapshot) {
	if snap.BuildTime.IsZero() || snap.Age(time.Now()) <= l.cfg.MaxAge {
		return
	}
	l.log.Warn("signature database is stale: is freshclam running?", "dir", snap.Dir, "age", age(snap),
		"max_age", l.cfg.MaxAge, "built", snap.BuildTime.UTC().Format(time.RFC3339))
}

// SelfCheck answers clamd 1.5's SELFCHECK as the owner of reloads: true
// when the database clamd was last told to load is the one on disk;
// otherwise it starts the managed reload (or finds one running) and
// returns false.
func (l *lifecycle) SelfCheck(context.Context) (bool, error) {
	if !l.reloading.TryLock() {
		return false, nil // a reload runs: RELOADING
	}
	snap, err := sigdb.Load(l.dir)
	if err != nil {
		l.reloading.Unlock()
		return false, err
	}
	if cur := l.loaded.Load(); cur != nil && cur.Digest == snap.Digest {
		l.reloading.Unlock()
		return true, nil
	}
	go func() {
		defer l.reloading.Unlock()
		l.reloadLocked(l.base, snap)
	}()
	return false, nil
}

// Tag is the ICAP ISTag: a new database, a new tag.
func (l *lifecycle) Tag() string {
	if t := l.tag.Load(); t != nil {
		return *t
	}
	return ""
}

// Stats is the line the gateway adds to clamd's STATS reply.
func (l *lifecycle) Stats() string {
	s := l.loaded.Load()
	if s == nil {
		return ""
	}
	m := l.reloader.current()
	return fmt.Sprintf("DATABASE: dir %s version %d signatures %d built %s age %s reload %s (%s)\n",
		s.Dir, s.Version, s.Signatures, s.BuildTime.UTC().Format(time.RFC3339), age(s), m.Name(), m.Basis)
}

func age(s *sigdb.Snapshot) string {
	if s.BuildTime.IsZero() {
		return "unknown"
	}
	return s.Age(time.Now()).Round(time.Second).String()
}
