package metrics

import "github.com/prometheus/client_golang/prometheus"

// SetCache exports the verdict cache's lookups (per client, in Done) and
// its size, read at scrape time from size.
func (m *Metrics) SetCache(size func() (entries int, bytes int64)) {
	entries := func() float64 { n, _ := size(); return float64(n) }
	bytes := func() float64 { _, b := size(); return float64(b) }
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "cache_entries",
			Help: "Verdicts the verdict cache holds now."}, entries),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "cache_bytes",
			Help: "Memory the verdict cache's entries account for (replies and a fixed cost each)."}, bytes),
	)
}

func newCacheCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "cache_lookups_total",
		Help: "Verdict cache lookups of spooled streams, by client and result (hit: answered without clamd, miss: scanned).",
	}, []string{"client", "result"})
}
