package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are sentry's Prometheus metrics, named as Dapr's sentry exports
// them (pkg/sentry/monitoring) plus the root's expiry.
type Metrics struct {
	received      prometheus.Counter
	success       prometheus.Counter
	failure       *prometheus.CounterVec
	serverFailed  *prometheus.CounterVec
	issuerChanged prometheus.Counter
	issuerExpiry  prometheus.Gauge
	rootExpiry    prometheus.Gauge
}

// NewMetrics registers sentry's metrics with reg. A nil reg gives metrics
// that are counted but exported nowhere.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dapr_sentry_cert_sign_request_received_total",
			Help: "The number of CSRs received.",
		}),
		success: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dapr_sentry_cert_sign_success_total",
			Help: "The number of certificates issuances that have succeeded.",
		}),
		failure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_sentry_cert_sign_failure_total",
			Help: "The number of errors occurred when signing the CSR.",
		}, []string{"reason"}),
		serverFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_sentry_servercert_issue_failed_total",
			Help: "The number of server TLS certificate issuance failures.",
		}, []string{"reason"}),
		issuerChanged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dapr_sentry_issuercert_changed_total",
			Help: "The number of issuer cert updates, when issuer cert or key is changed.",
		}),
		issuerExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dapr_sentry_issuercert_expiry_timestamp",
			Help: "The unix timestamp, in seconds, when the issuer cert will expire.",
		}),
		rootExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dapr_sentry_rootcert_expiry_timestamp",
			Help: "The unix timestamp, in seconds, when the active root cert will expire.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.received, m.success, m.failure, m.serverFailed, m.issuerChanged, m.issuerExpiry, m.rootExpiry)
	}
	return m
}

// IssuerChanged counts a new issuer (for example freshly generated).
func (m *Metrics) IssuerChanged() { m.issuerChanged.Inc() }

func (m *Metrics) setExpiry(issuer, root time.Time) {
	m.issuerExpiry.Set(float64(issuer.Unix()))
	m.rootExpiry.Set(float64(root.Unix()))
}
