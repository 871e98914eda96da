package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// TestType is the type of the body SendTest sends.
const TestType = "webhook.test"

// SendTest sends one signed test request to the endpoint at once, without
// retries, records it in the attempt log (outcome "test") and returns it.
// It works whether the endpoint is enabled or not.
func (d *Dispatcher) SendTest(ctx context.Context, ep endpoints.Endpoint) (Attempt, error) {
	now := d.now().UTC()
	id := "test_" + schemas.NewID()
	ts, _ := schemas.FormatTime(now)
	body, err := json.Marshal(map[string]any{
		"type":      TestType,
		"timestamp": ts,
		"data": map[string]string{
			"org_id":      ep.OrgID,
			"endpoint_id": ep.ID,
			"message":     "Test request from Takumo Audit. Real deliveries carry an audit event in data.",
		},
	})
	if err != nil {
		return Attempt{}, err
	}
	d.sem <- struct{}{}
	res := d.send(ctx, ep, id, body)
	<-d.sem
	rec := Attempt{Time: d.now().UTC(), EndpointID: ep.ID, MessageID: id, Kind: "test", Attempt: 1, Outcome: OutcomeTest,
		StatusCode: res.status, LatencyMS: float64(res.latency.Microseconds()) / 1000, Response: res.response}
	if res.err != nil {
		rec.Error = res.err.Error()
	}
	d.finish(ep.OrgID, rec, "")
	return rec, nil
}

// Replay queues a delivery to ep of every event each yields that matches
// ep's filters, as a new delivery even when the event was delivered
// before (webhook-id stays the event id, so receivers can tell). batch
// names the replay so that running it twice queues twice. It returns how
// many deliveries were queued; on error, those queued so far stay queued.
func (d *Dispatcher) Replay(ctx context.Context, ep endpoints.Endpoint, batch string, each func(yield func(schemas.Event) error) error) (int, error) {
	var futs []jetstream.PubAckFuture
	n := 0
	wait := func() error {
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("dispatcher: queue replay: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futs = futs[:0]
		return nil
	}
	err := each(func(ev schemas.Event) error {
		if ev.OrgID != ep.OrgID || !ep.Matches(ev.Action) {
			return nil
		}
		body, err := EncodeBody(ev)
		if err != nil {
			return nil
		}
		received := time.Now()
		if ev.ReceivedAt != nil {
			received = *ev.ReceivedAt
		}
		f, err := d.js.PublishMsgAsync(deliveryMsg(ep, ev.ID, ev.ID+"."+ep.ID+".replay."+batch, KindRecover, received, body))
		if err != nil {
			return fmt.Errorf("dispatcher: queue replay: %w", err)
		}
		futs = append(futs, f)
		n++
		if len(futs) >= 1000 {
			return wait()
		}
		return nil
	})
	if werr := wait(); err == nil {
		err = werr
	}
	d.m.fanoutQueued.Add(float64(n))
	if errors.Is(err, context.Canceled) {
		return n, err
	}
	return n, err
}
