package metrics

import (
	"clamgate/internal/scan"

	"github.com/prometheus/client_golang/prometheus"
)

// SetSpool exports the spool budget's use: what the spool files hold now,
// the most they have held at once, and the budget. Call it once.
func (m *Metrics) SetSpool(b *scan.SpoolBudget) {
	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	m.reg.MustRegister(
		gauge("spool_bytes", "Bytes the spool files (streams and ICAP bodies waiting for a verdict) hold now.", b.Used),
		gauge("spool_peak_bytes", "The most bytes the spool files have held at once since the start.", b.Peak),
		gauge("spool_budget_bytes", "The spool budget (server.spool_budget, else half the spool file system's free space at start); 0 = none.", b.Total),
	)
}
