package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BackendState is one clamd backend as the health checker last saw it.
type BackendState struct {
	Address string
	Role    string // "primary" or "fallback"
	Up      bool
}

type databaseFunc = func() (version, signatures int, built time.Time, ok bool)
type memoryFunc = func() (rssBytes, capBytes int64, ok bool)

var (
	backendUpDesc = prometheus.NewDesc(namespace+"_backend_up",
		"Whether the clamd backend answered its last health check (1) or not (0).",
		[]string{"backend", "role"}, nil)
	dbVersionDesc = prometheus.NewDesc(namespace+"_database_version",
		"Version of the signature database the engine has loaded (daily.cvd/cld).", nil, nil)
	dbSignaturesDesc = prometheus.NewDesc(namespace+"_database_signatures",
		"Number of signatures the engine has loaded.", nil, nil)
	dbAgeDesc = prometheus.NewDesc(namespace+"_database_age_seconds",
		"Seconds since the loaded signature database was built.", nil, nil)
	engineRSSDesc = prometheus.NewDesc(namespace+"_engine_rss_bytes",
		"Resident memory of the clamd engine.", nil, nil)
	engineLimitDesc = prometheus.NewDesc(namespace+"_engine_memory_limit_bytes",
		"Memory cap of the engine's cgroup (memory.max); absent when uncapped.", nil, nil)
	reloadModeDesc = prometheus.NewDesc(namespace+"_database_reload_mode",
		"The mode the next database reload runs in (1): frugal holds scans with one database in memory, concurrent keeps scanning with two; basis is what chose it (config, cgroup, host, unknown, external).",
		[]string{"mode", "basis"}, nil)
	engineCrashesDesc = prometheus.NewDesc(namespace+"_engine_crashes_total",
		"Exits of the managed clamd that nobody asked for, since the gateway started.", nil, nil)
	engineLoopingDesc = prometheus.NewDesc(namespace+"_engine_crash_looping",
		"1 while the managed clamd keeps exiting (exited and not back, or back for less than a minute), else 0.", nil, nil)
	heldDesc = prometheus.NewDesc(namespace+"_dispatch_held_seconds",
		"How long new scans have been held for a frugal database reload so far; 0 when they are not.", nil, nil)
)

// stateCollector reads gauges from the gateway at scrape time: the state
// already lives in the health checker, database watcher and engine
// supervisor, and copying it into gauges on every change would only add a
// second, possibly stale, copy. A source that is nil or not ok leaves its
// series out, because a 0 would read as "down" or "version 0".
type stateCollector struct {
	mu       sync.Mutex
	backends func() []BackendState
	database databaseFunc
	memory   memoryFunc
	crashes  func() (crashes uint64, looping bool)
	held     func() time.Duration
	reload   func() (mode, basis string)
	now      func() time.Time
}

// SetHeld sets where dispatch_held_seconds comes from; nil removes it.
func (m *Metrics) SetHeld(f func() time.Duration) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.held = f
}

// SetReloadMode sets where database_reload_mode comes from; nil removes it.
func (m *Metrics) SetReloadMode(f func() (mode, basis string)) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.reload = f
}

// SetBackends sets where backend_up comes from; nil removes it.
func (m *Metrics) SetBackends(f func() []BackendState) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.backends = f
}

// SetDatabase sets where the database_* series come from; nil removes them.
func (m *Metrics) SetDatabase(f func() (version int, signatures int, built time.Time, ok bool)) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.database = f
}

// SetEngineMemory sets where the engine_* series come from (see
// EngineMemory); nil removes them.
func (m *Metrics) SetEngineMemory(f func() (rssBytes int64, capBytes int64, ok bool)) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.memory = f
}

// SetEngineCrashes sets where the managed engine's engine_crashes_total
// and engine_crash_looping come from; nil (an external clamd) removes them.
func (m *Metrics) SetEngineCrashes(f func() (crashes uint64, looping bool)) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.crashes = f
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{backendUpDesc, dbVersionDesc, dbSignaturesDesc,
		dbAgeDesc, engineRSSDesc, engineLimitDesc, engineCrashesDesc, engineLoopingDesc, heldDesc, reloadModeDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	// Copy the sources so that a slow source never holds the lock against
	// the gateway's Set calls.
	c.mu.Lock()
	backends, database, memory, held, reload, crashes := c.backends, c.database, c.memory, c.held, c.reload, c.crashes
	c.mu.Unlock()
	if crashes != nil {
		n, looping := crashes()
		ch <- prometheus.MustNewConstMetric(engineCrashesDesc, prometheus.CounterValue, float64(n))
		ch <- prometheus.MustNewConstMetric(engineLoopingDesc, prometheus.GaugeValue, b2f(looping))
	}
	if reload != nil {
		mode, basis := reload()
		ch <- prometheus.MustNewConstMetric(reloadModeDesc, prometheus.GaugeValue, 1, mode, basis)
	}
	if held != nil {
		ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, held().Seconds())
	}
	if backends != nil {
		collectBackends(ch, backends())
	}
	if database != nil {
		c.collectDatabase(ch, database)
	}
	if memory != nil {
		collectMemory(ch, memory)
	}
}

func collectBackends(ch chan<- prometheus.Metric, states []BackendState) {
	for _, b := range states {
		up := 0.0
		if b.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(backendUpDesc, prometheus.GaugeValue, up, b.Address, b.Role)
	}
}

func (c *stateCollector) collectDatabase(ch chan<- prometheus.Metric, f databaseFunc) {
	version, signatures, built, ok := f()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(dbVersionDesc, prometheus.GaugeValue, float64(version))
	ch <- prometheus.MustNewConstMetric(dbSignaturesDesc, prometheus.GaugeValue, float64(signatures))
	if !built.IsZero() {
		ch <- prometheus.MustNewConstMetric(dbAgeDesc, prometheus.GaugeValue, c.now().Sub(built).Seconds())
	}
}

func collectMemory(ch chan<- prometheus.Metric, f memoryFunc) {
	rss, limit, ok := f()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(engineRSSDesc, prometheus.GaugeValue, float64(rss))
	if limit > 0 {
		ch <- prometheus.MustNewConstMetric(engineLimitDesc, prometheus.GaugeValue, float64(limit))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
