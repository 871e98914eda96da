package dispatcher

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	attempts      *prometheus.CounterVec
	deliveries    *prometheus.CounterVec
	attemptDur    prometheus.Histogram
	latency       prometheus.Histogram
	disabled      *prometheus.CounterVec
	fanoutEvents  *prometheus.CounterVec
	fanoutQueued  prometheus.Counter
	lanes         prometheus.Gauge
	inflight      prometheus.Gauge
	logDropped    prometheus.Counter
	fanoutFailure prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_webhook_attempts_total", Help: "Webhook delivery attempts by outcome (success, retry, failed, disabled, skipped, test).",
		}, []string{"outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_webhook_deliveries_total", Help: "Finished webhook deliveries by result (delivered, failed, skipped).",
		}, []string{"result"}),
		attemptDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "audit_webhook_attempt_duration_seconds", Help: "Duration of one webhook request.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "audit_webhook_event_to_delivery_seconds", Help: "Time from an event's arrival in the stream to its successful delivery.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60, 600, 3600, 86400},
		}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_webhook_endpoints_disabled_total", Help: "Endpoints disabled by the dispatcher, by reason (gone, failing).",
		}, []string{"reason"}),
		fanoutEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_webhook_fanout_events_total", Help: "Events read by the fan-out, by result (matched, unmatched, not_entitled, undecodable).",
		}, []string{"result"}),
		fanoutQueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_webhook_deliveries_queued_total", Help: "Delivery messages queued by the fan-out and by replays.",
		}),
		lanes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "audit_webhook_lanes", Help: "Endpoint lanes this instance runs.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "audit_webhook_requests_in_flight", Help: "Webhook requests in flight on this instance.",
		}),
		logDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_webhook_attempt_log_errors_total", Help: "Attempt log entries that could not be written.",
		}),
		fanoutFailure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_webhook_fanout_publish_errors_total", Help: "Events whose delivery messages could not all be stored (the event is retried).",
		}),
	}
	if r != nil {
		r.MustRegister(m.attempts, m.deliveries, m.attemptDur, m.latency, m.disabled, m.fanoutEvents, m.fanoutQueued, m.lanes, m.inflight, m.logDropped, m.fanoutFailure)
	}
	return m
}
