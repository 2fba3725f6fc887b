package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TLSExpiry is one certificate in use: its role ("listener" or
// "backend"), its listener's or backend's address, and when the earliest
// of it and its CA expires.
type TLSExpiry struct {
	Role, Address string
	NotAfter      time.Time
}

// tlsMetrics are the TLS listeners' refusals and the certificates' expiry.
type tlsMetrics struct {
	refusals *prometheus.CounterVec
	expiry   *prometheus.Desc
	mu       sync.Mutex
	certs    func() []TLSExpiry
	now      func() time.Time
}

func newTLSMetrics() *tlsMetrics {
	return &tlsMetrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tls_refusals_total",
			Help: "TLS connections refused before the protocol, by listener and reason (no_certificate, unknown_ca, expired, no_policy, not_tls, timeout, handshake, busy).",
		}, []string{"listener", "reason"}),
		expiry: prometheus.NewDesc(namespace+"_tls_certificate_expiry_seconds",
			"Seconds until the certificate in use (or, earlier, its CA) expires, by role (listener, backend) and address; negative once expired.",
			[]string{"role", "address"}, nil),
		now: time.Now,
	}
}

func (t *tlsMetrics) Describe(ch chan<- *prometheus.Desc) {
	t.refusals.Describe(ch)
	ch <- t.expiry
}

func (t *tlsMetrics) Collect(ch chan<- prometheus.Metric) {
	t.refusals.Collect(ch)
	t.mu.Lock()
	certs := t.certs
	t.mu.Unlock()
	if certs == nil {
		return
	}
	now := t.now()
	for _, c := range certs() {
		ch <- prometheus.MustNewConstMetric(t.expiry, prometheus.GaugeValue, c.NotAfter.Sub(now).Seconds(), c.Role, c.Address)
	}
}

// TLSRefused counts a TLS connection refused before the protocol.
func (m *Metrics) TLSRefused(listener, reason string) {
	m.tls.refusals.WithLabelValues(listener, reason).Inc()
}

// SetTLS sets where tls_certificate_expiry_seconds comes from.
func (m *Metrics) SetTLS(f func() []TLSExpiry) {
	m.tls.mu.Lock()
	defer m.tls.mu.Unlock()
	m.tls.certs = f
}
