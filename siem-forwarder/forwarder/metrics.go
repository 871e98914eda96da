package forwarder

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	forwarded  *prometheus.CounterVec
	sendErrors *prometheus.CounterVec
	lag        *prometheus.GaugeVec
	sendSecs   *prometheus.HistogramVec
	dead       *prometheus.CounterVec
}

// newMetrics creates the metrics and registers them with r when not nil.
func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_siem_events_forwarded_total",
			Help: "Events a SIEM destination accepted."}, []string{"destination"}),
		sendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_siem_send_errors_total",
			Help: "Failed batch sends to a SIEM destination (each is retried)."}, []string{"destination"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "audit_siem_lag",
			Help: "Events of the org not yet delivered to the SIEM destination."}, []string{"destination"}),
		sendSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "audit_siem_send_seconds",
			Help: "Duration of one batch send.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"destination"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_siem_dead_lettered_total",
			Help: "Poison messages a SIEM destination set aside (by class in audit_consume_poison_total)."}, []string{"destination"}),
	}
	if r != nil {
		r.MustRegister(m.forwarded, m.sendErrors, m.lag, m.sendSecs, m.dead)
	}
	return m
}
