package forwarder

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ConsumerMetricsName labels the consume engine metrics
// (audit_consume_*) of every destination's consumer, whose own name holds
// the org and destination ids.
const ConsumerMetricsName = "siem"

// metrics are the forwarder's own metrics. They carry no org or
// destination label: /metrics is served on the public listener, and a
// destination's own figures (lag, delivered, last error) are in its status
// route, which only the org can read.
type metrics struct {
	forwarded   prometheus.Counter
	sendErrors  prometheus.Counter
	lag         prometheus.Gauge
	sendSecs    prometheus.Histogram
	dead        prometheus.Counter
	refused     prometheus.Counter
	skippedPlan prometheus.Counter

	mu   sync.Mutex
	lags map[string]uint64 // per destination, summed into lag
}

// newMetrics creates the metrics and registers them with r when not nil.
func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_siem_events_forwarded_total",
			Help: "Events SIEM destinations accepted."}),
		sendErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_siem_send_errors_total",
			Help: "Failed batch sends to SIEM destinations (each is retried)."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "audit_siem_lag",
			Help: "Events not yet delivered, summed over the SIEM destinations this instance runs."}),
		sendSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "audit_siem_send_seconds",
			Help: "Duration of one batch send.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_siem_dead_lettered_total",
			Help: "Poison messages SIEM destinations set aside (by class in audit_consume_poison_total)."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_siem_destinations_refused_total",
			Help: "Stored destinations not delivered to because their configuration failed validation."}),
		skippedPlan: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_siem_skipped_plan_total",
			Help: "Events not sent because their organization's plan does not include SIEM export."}),
		lags: map[string]uint64{},
	}
	if r != nil {
		r.MustRegister(m.forwarded, m.sendErrors, m.lag, m.sendSecs, m.dead, m.refused, m.skippedPlan)
	}
	return m
}

// setLag records the lag of one destination (zero forgets it) and sets the
// total. Safe for concurrent use.
func (m *metrics) setLag(dest string, lag uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if lag == 0 {
		delete(m.lags, dest)
	} else {
		m.lags[dest] = lag
	}
	var sum uint64
	for _, v := range m.lags {
		sum += v
	}
	m.lag.Set(float64(sum))
}
