package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reload results, the values of reloads_total's result label.
const (
	ReloadOK      = "ok"
	ReloadRefused = "refused"
)

// configMetrics tell whether the configuration running is the one on disk:
// a refused reload leaves the old one serving, which only an alert on
// these series makes visible.
type configMetrics struct {
	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	lastOK      prometheus.Gauge
	weight      *prometheus.GaugeVec

	mu      sync.Mutex
	clients map[string]int // the weights set last
}

func newConfigMetrics() *configMetrics {
	c := &configMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "config_reloads_total",
			Help: "Configuration reloads (SIGHUP), by result: ok, or refused (the running configuration was kept).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the running configuration was loaded: at start or by the last successful reload.",
		}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_successful",
			Help: "Whether the last reload was applied (1) or refused (0).",
		}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "client_weight",
			Help: "Each client policy's share of the engine under contention (weight), as configured now.",
		}, []string{"client"}),
	}
	c.reloads.WithLabelValues(ReloadOK)
	c.reloads.WithLabelValues(ReloadRefused)
	return c
}

func (c *configMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.reloads, c.lastSuccess, c.lastOK, c.weight}
}

// ConfigLoaded records the configuration in force: at start (reload
// false), or after a reload applied. The reload is counted last, so that a
// scrape that sees it also sees the new weights.
func (m *Metrics) ConfigLoaded(at time.Time, weights map[string]int, reload bool) {
	c := m.config
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, w := range weights {
		c.weight.WithLabelValues(name).Set(float64(max(w, 1))) // 0 means 1
	}
	for name := range c.clients {
		if _, ok := weights[name]; !ok {
			c.weight.DeleteLabelValues(name)
		}
	}
	c.clients = weights
	c.lastSuccess.Set(float64(at.UnixNano()) / 1e9)
	c.lastOK.Set(1)
	if reload {
		c.reloads.WithLabelValues(ReloadOK).Inc()
	}
}

// ConfigRefused records a reload refused: the running configuration stays.
func (m *Metrics) ConfigRefused() {
	m.config.lastOK.Set(0)
	m.config.reloads.WithLabelValues(ReloadRefused).Inc() // last, as in ConfigLoaded
}
