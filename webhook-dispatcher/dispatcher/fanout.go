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
	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/platform/topology"
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
		consume.WithRebind("consumer "+topology.FanoutStream+"/"+FanoutConsumer, func(ctx context.Context) (consume.Consumer, error) {
			return d.js.Consumer(ctx, topology.FanoutStream, FanoutConsumer)
		}, d.notify),
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

// item is one message of AUDIT_FANOUT: an event, or a signed checkpoint
// when ckpt is set.
type item struct {
	ev   schemas.Event
	ckpt *witness.Record
}

// decodeFanout reads one event or signed checkpoint. Undecodable messages
// are poison the ingestor dead-letters (events) or nobody does
// (checkpoints); the fan-out counts and terminates its copy.
func decodeFanout(msg jetstream.Msg) (item, error) {
	if witness.IsSubject(msg.Subject()) {
		r, _, err := consume.DecodeCheckpoint(msg)
		return item{ckpt: &r}, err
	}
	ev, _, err := consume.DecodeEvent(msg)
	return item{ev: ev}, err
}

// fanBatch publishes the delivery messages of a batch of events and waits
// until the stream stored every one of them. A failed publish fails the
// batch, which the engine retries: the stream drops the copies it already
// holds (deduplicated by "<event_id>.<endpoint_id>").
//
// A signed checkpoint goes like an event whose action is witness.Type
// ("audit.checkpoint"): to every enabled endpoint of an Enterprise org
// whose filters select that type, with the record's id as webhook-id.
func (d *Dispatcher) fanBatch(ctx context.Context, batch []consume.Msg[item]) error {
	var futs []jetstream.PubAckFuture
	counts := map[string]int{}
	var errs []error
	for i, m := range batch {
		ev := m.Value.ev
		org, action, id, kind := ev.OrgID, ev.Action, ev.ID, KindEvent
		var received time.Time
		if c := m.Value.ckpt; c != nil {
			org, action, id, kind, received = c.OrgID, witness.Type, c.ID(), KindCheckpoint, c.SignedAt
		} else {
			received = *ev.ReceivedAt
		}
		if !d.plans.Get(org).Plan.HasEnterpriseFeatures() {
			counts["not_entitled"]++
			continue
		}
		eps := d.reg.Matching(org, action)
		if len(eps) == 0 {
			counts["unmatched"]++
			continue
		}
		var body []byte
		var err error
		if m.Value.ckpt != nil {
			body, err = EncodeCheckpointBody(*m.Value.ckpt)
		} else {
			body, err = EncodeBody(ev)
		}
		if err != nil {
			errs = append(errs, consume.AtMessage(i, &consume.PoisonError{Class: "encode", Reason: "encode: " + err.Error(), Local: true, Err: err}))
			continue
		}
		counts["matched"]++
		for _, ep := range eps {
			fut, err := d.js.PublishMsgAsync(deliveryMsg(ep, id, id+"."+ep.ID, kind, received, body))
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

// EncodeCheckpointBody returns the webhook body of a signed checkpoint:
// {"type": "audit.checkpoint", "timestamp": <signed_at, RFC 3339>,
// "data": <the witness.Record>}.
func EncodeCheckpointBody(r witness.Record) ([]byte, error) {
	ts, err := schemas.FormatTime(r.SignedAt)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Type      string         `json:"type"`
		Timestamp string         `json:"timestamp"`
		Data      witness.Record `json:"data"`
	}{witness.Type, ts, r})
}
