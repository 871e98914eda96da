package ingestor

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events        prometheus.Counter
	batches       prometheus.Counter
	batchSize     prometheus.Histogram
	insertSeconds prometheus.Histogram
	insertErrors  prometheus.Counter
	deadLettered  *prometheus.CounterVec
}

// newMetrics creates the ingestor's metrics and registers them with r when
// r is not nil.
func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_ingest_events_total", Help: "Events inserted into the store and acknowledged.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_ingest_batches_total", Help: "Batches inserted into the store.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "audit_ingest_batch_size", Help: "Events per inserted batch.",
			Buckets: []float64{1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000},
		}),
		insertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "audit_ingest_insert_seconds", Help: "Latency of one insert attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		insertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_ingest_insert_errors_total", Help: "Failed insert attempts (each retried).",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_ingest_dead_lettered_total", Help: "Messages sent to the dead-letter stream, by reason.",
		}, []string{"reason"}),
	}
	if r != nil {
		r.MustRegister(m.events, m.batches, m.batchSize, m.insertSeconds, m.insertErrors, m.deadLettered)
	}
	return m
}
