package topology

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ConsumerLister is the part of jetstream.Stream that LagCollector needs.
type ConsumerLister interface {
	ListConsumers(ctx context.Context) jetstream.ConsumerInfoLister
}

var _ ConsumerLister = (jetstream.Stream)(nil)

// StreamGetter is the part of jetstream.JetStream that LagCollector needs.
type StreamGetter interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

// LagCollector reports, on every scrape, the backlog of each durable
// consumer of the events stream: messages not yet delivered
// (audit_consumer_pending) and delivered but not yet acknowledged
// (audit_consumer_ack_pending), plus the stream's own size.
type LagCollector struct {
	js         StreamGetter
	pending    *prometheus.Desc
	ackPending *prometheus.Desc
	redeliver  *prometheus.Desc
	msgs       *prometheus.Desc
	bytes      *prometheus.Desc
	maxBytes   *prometheus.Desc
}

var _ prometheus.Collector = (*LagCollector)(nil)

// NewLagCollector returns a collector reading from js.
func NewLagCollector(js StreamGetter) *LagCollector {
	return &LagCollector{
		js:         js,
		pending:    prometheus.NewDesc("audit_consumer_pending", "Events in the stream not yet delivered to the consumer.", []string{"consumer"}, nil),
		ackPending: prometheus.NewDesc("audit_consumer_ack_pending", "Events delivered to the consumer and not yet acknowledged.", []string{"consumer"}, nil),
		redeliver:  prometheus.NewDesc("audit_consumer_redelivered", "Events currently being redelivered to the consumer.", []string{"consumer"}, nil),
		msgs:       prometheus.NewDesc("audit_stream_messages", "Messages held by the stream.", []string{"stream"}, nil),
		bytes:      prometheus.NewDesc("audit_stream_bytes", "Bytes held by the stream.", []string{"stream"}, nil),
		maxBytes:   prometheus.NewDesc("audit_stream_max_bytes", "The stream's byte limit; at it, publishes fail.", []string{"stream"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.ackPending, c.redeliver, c.msgs, c.bytes, c.maxBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A stream that cannot be reached
// yields no samples rather than stale ones.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range []string{EventsStream, FanoutStream, DeadLetterStream} {
		s, err := c.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info := s.CachedInfo()
		if fresh, err := s.Info(ctx); err == nil {
			info = fresh
		}
		ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.GaugeValue, float64(info.State.Msgs), name)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(info.State.Bytes), name)
		ch <- prometheus.MustNewConstMetric(c.maxBytes, prometheus.GaugeValue, float64(info.Config.MaxBytes), name)
		if name == DeadLetterStream {
			continue
		}
		type lag struct{ pending, ackPending, redelivered uint64 }
		sums := map[string]*lag{}
		var labels []string
		l := s.ListConsumers(ctx)
		for ci := range l.Info() {
			label := consumerLabel(ci.Name)
			x := sums[label]
			if x == nil {
				x = &lag{}
				sums[label] = x
				labels = append(labels, label)
			}
			x.pending += ci.NumPending
			x.ackPending += uint64(ci.NumAckPending)
			x.redelivered += uint64(ci.NumRedelivered)
		}
		for _, label := range labels {
			x := sums[label]
			ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(x.pending), label)
			ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(x.ackPending), label)
			ch <- prometheus.MustNewConstMetric(c.redeliver, prometheus.GaugeValue, float64(x.redelivered), label)
		}
	}
}

// perDestination maps the name prefix of the consumers made one per
// destination, whose names hold an org id and a destination id (the SIEM
// forwarder's "siem_<org>_<destination>"), to the label their figures are
// summed under: /metrics is served on the public listener and names no
// tenant. A destination's own lag is in its status route.
var perDestination = map[string]string{"siem_": "siem"}

func consumerLabel(name string) string {
	for prefix, label := range perDestination {
		if strings.HasPrefix(name, prefix) {
			return label
		}
	}
	return name
}
