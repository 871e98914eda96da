package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// fanout turns events into delivery messages on the batch-consumer engine
// until ctx ends.
func (d *Dispatcher) fanout(ctx context.Context, cons jetstream.Consumer) error {
	eng, err := consume.New(consume.Config{
		Name:            FanoutConsumer,
		BatchSize:       d.cfg.FanoutBatchSize,
		BatchWait:       d.cfg.FanoutBatchWait,
		AckWait:         fanoutAckWait,
		RetryInitial:    time.Second,
		RetryMax:        30 * time.Second,
		ShutdownTimeout: d.cfg.ShutdownTimeout,
	}, cons, decodeFanout, d.fanBatch,
		consume.WithLogger(d.log),
		consume.WithMetrics(d.cm),
		consume.WithDeadLetters(d.js),
		consume.WithPoisonHook(func(*consume.PoisonError, string) { d.m.fanoutEvents.WithLabelValues("undecodable").Inc() }),
	)
	if err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	if err := eng.Run(ctx); err != nil {
		return fmt.Errorf("dispatcher: fan-out: %w", err)
	}
	return nil
}

// decodeFanout reads one event. Undecodable messages are poison the
// ingestor dead-letters; the fan-out counts and terminates its copy.
func decodeFanout(msg jetstream.Msg) (schemas.Event, error) {
	ev, _, err := consume.DecodeEvent(msg)
	return ev, err
}

// fanBatch publishes the delivery messages of a batch of events and waits
// until the stream stored every one of them. A failed publish fails the
// batch, which the engine retries: the stream drops the copies it already
// holds (deduplicated by "<event_id>.<endpoint_id>").
func (d *Dispatcher) fanBatch(ctx context.Context, batch []consume.Msg[schemas.Event]) error {
	var futs []jetstream.PubAckFuture
	counts := map[string]int{}
	var errs []error
	for i, m := range batch {
		ev := m.Value
		if !d.plans.Get(ev.OrgID).Plan.HasEnterpriseFeatures() {
			counts["not_entitled"]++
			continue
		}
		eps := d.reg.Matching(ev.OrgID, ev.Action)
		if len(eps) == 0 {
			counts["unmatched"]++
			continue
		}
		body, err := EncodeBody(ev)
		if err != nil {
			errs = append(errs, consume.AtMessage(i, &consume.PoisonError{Class: "encode", Reason: "encode: " + err.Error(), Local: true, Err: err}))
			continue
		}
		counts["matched"]++
		for _, ep := range eps {
			fut, err := d.js.PublishMsgAsync(deliveryMsg(ep, ev.ID, ev.ID+"."+ep.ID, KindEvent, *ev.ReceivedAt, body))
			if err != nil {
				d.m.fanoutFailure.Inc()
				return consume.Transient(fmt.Errorf("storing a delivery message: %w", err), 0)
			}
			futs = append(futs, fut)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, fut := range futs {
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			d.m.fanoutFailure.Inc()
			return consume.Transient(fmt.Errorf("storing a delivery message: %w", err), 0)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for k, n := range counts {
		d.m.fanoutEvents.WithLabelValues(k).Add(float64(n))
	}
	d.m.fanoutQueued.Add(float64(len(futs)))
	return nil
}

func deliveryMsg(ep endpoints.Endpoint, webhookID, dedup, kind string, received time.Time, body []byte) *nats.Msg {
	m := nats.NewMsg(deliverySubject(ep.OrgID, ep.ID))
	m.Header.Set(jetstream.MsgIDHeader, dedup)
	m.Header.Set(hdrEventID, webhookID)
	m.Header.Set(hdrKind, kind)
	m.Header.Set(hdrEventTime, strconv.FormatInt(received.UnixNano(), 10))
	m.Data = body
	return m
}

// EncodeBody returns the webhook body of ev:
// {"type": <action>, "timestamp": <occurred_at, RFC 3339>, "data": <event>}.
func EncodeBody(ev schemas.Event) ([]byte, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	ts, err := schemas.FormatTime(ev.OccurredAt)
	if err != nil {
		return nil, err
	}
	typ, _ := json.Marshal(ev.Action)
	b := make([]byte, 0, len(data)+len(typ)+64)
	b = append(b, `{"type":`...)
	b = append(b, typ...)
	b = append(b, `,"timestamp":"`...)
	b = append(b, ts...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}'), nil
}
