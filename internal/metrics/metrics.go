// Package metrics exports what the gateway does as Prometheus series.
//
// Consolidating every client onto one clamd makes the engine a shared
// resource, so the series answer the operator's questions about sharing:
// who is loading the engine (scans and bytes by client and protocol), who is
// waiting for whom (queue depth and wait per client, scan latency), whether
// the engine can answer at all (backend_up), whether its verdicts are current
// (database version and age) and whether it is about to be killed for memory
// (engine RSS against its cgroup cap).
//
// The threat name is deliberately not a label: every new signature name would
// create new series forever, and a flood of distinct malware names could
// exhaust the scraper's memory. The audit log records threats per scan; the
// metrics count infections through verdict="infected".
//
// Metrics keeps its own registry rather than the global default one, so that
// tests and several gateways in one process never share or collide on
// counters, and nothing registered by a dependency leaks into /metrics.
package metrics

import (
	"errors"
	"net/http"
	"time"

	"clamgate/internal/buildinfo"
	"clamgate/internal/scan"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "clamgate"

// latencyBuckets spans a cached small mail (about 1 ms) to a large archive
// near clamd's default timeouts (2 min), roughly 2.5x apart, so that both
// the mail p99 and the proxy's slow tail stay readable.
var latencyBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120,
}

// Metrics counts jobs as a scan.Observer and reads the gateway's state at
// scrape time. Its methods are safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	scans    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	wait     *prometheus.HistogramVec
	depth    *prometheus.GaugeVec
	queued   *prometheus.GaugeVec
	bytes    *prometheus.CounterVec
	bulk     *prometheus.CounterVec
	gone     *prometheus.CounterVec
	lookups  *prometheus.CounterVec
	state    *stateCollector
	config   *configMetrics
	tls      *tlsMetrics
}

var _ scan.Observer = (*Metrics)(nil)

// New returns Metrics with its own registry, which also carries the Go
// runtime and process collectors: the gateway's own memory and file
// descriptors are part of the load story.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "scans_total",
			Help: "Scan jobs that reached the dispatcher, by client, protocol and verdict (clean, infected, failed, busy, abandoned).",
		}, []string{"client", "protocol", "verdict"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "scan_duration_seconds",
			Help:    "Time clamd spent on scans that were admitted to it.",
			Buckets: latencyBuckets,
		}, []string{"client", "protocol"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "queue_wait_seconds",
			Help:    "Time scan jobs waited in the gateway's queue before clamd (jobs refused at once excluded).",
			Buckets: latencyBuckets,
		}, []string{"client"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_depth",
			Help: "Scan jobs of the client waiting for the engine.",
		}, []string{"client"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_bytes",
			Help: "Bytes of the client's scan jobs waiting for the engine.",
		}, []string{"client"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "scanned_bytes_total",
			Help: "Bytes of the streams and files scanned, by client and protocol.",
		}, []string{"client", "protocol"}),
		bulk: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bulk_jobs_total",
			Help: "Scans classified bulk (large, or long at clamd), which the scheduler caps while short work is present.",
		}, []string{"client"}),
		gone: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "jobs_abandoned_total",
			Help: "Jobs dropped because their client disconnected, by client and where they were (queued, running).",
		}, []string{"client", "state"}),
		lookups: newCacheCounter(),
		state:   &stateCollector{now: time.Now},
		config:  newConfigMetrics(),
		tls:     newTLSMetrics(),
	}
	m.reg.MustRegister(
		buildInfo(buildinfo.Read()),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.scans, m.duration, m.wait, m.depth, m.queued, m.bytes, m.bulk, m.gone, m.lookups, m.state, m.tls,
	)
	m.reg.MustRegister(m.config.collectors()...)
	return m
}

// buildInfo is the usual constant-1 series whose labels say which build
// runs, so that dashboards can join it and alerts can name the version.
func buildInfo(i buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels name the running build (module version, VCS revision, Debian package version, Go).",
	}, []string{"version", "revision", "package", "goversion"})
	g.WithLabelValues(i.Module, i.Revision, i.Package, i.GoVersion).Set(1)
	return g
}

// Registry is for callers that add their own collectors or gather directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Done counts a finished job. Commands (PING, VERSION...) are not scans and
// would only blur the per-client load.
func (m *Metrics) Done(job scan.Job, o scan.Outcome) {
	if job.Kind == scan.Command {
		return
	}
	verdict := o.Verdict()
	m.scans.WithLabelValues(job.Client, job.Protocol, verdict).Inc()
	if o.Bytes > 0 && o.Cache != "hit" {
		m.bytes.WithLabelValues(job.Client, job.Protocol).Add(float64(o.Bytes))
	}
	if o.Bulk {
		m.bulk.WithLabelValues(job.Client).Inc()
	}
	if o.Abandoned != "" {
		m.gone.WithLabelValues(job.Client, o.Abandoned).Inc()
	}
	if o.Cache != "" {
		m.lookups.WithLabelValues(job.Client, o.Cache).Inc()
	}
	if verdict != "busy" && o.Abandoned != "queued" && o.Cache != "hit" { // a refused, held, dropped or cached job never reached clamd
		m.duration.WithLabelValues(job.Client, job.Protocol).Observe(o.Duration.Seconds())
	}
	if !refusedAtOnce(o.Err) { // zero waits of refusals would hide the real queueing
		m.wait.WithLabelValues(job.Client).Observe(o.Wait.Seconds())
	}
}

// Queue records a client's waiting jobs and their bytes.
func (m *Metrics) Queue(client string, jobs int, bytes int64) {
	m.depth.WithLabelValues(client).Set(float64(jobs))
	m.queued.WithLabelValues(client).Set(float64(bytes))
}

func refusedAtOnce(err error) bool {
	var busy *scan.BusyError
	return errors.As(err, &busy)
}
