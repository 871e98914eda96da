package dispatcher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// lane is one endpoint's delivery loop on this instance.
type lane struct {
	org, id string
	cancel  context.CancelFunc
	done    chan struct{}
}

// reconcile starts a lane for every endpoint and stops (and cleans up
// after) lanes of deleted endpoints.
func (d *Dispatcher) reconcile(ctx context.Context) {
	all := d.reg.All()
	want := make(map[string]endpoints.Endpoint, len(all))
	for _, ep := range all {
		want[ep.Key()] = ep
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, l := range d.lanes {
		if _, ok := want[key]; ok {
			continue
		}
		delete(d.lanes, key)
		l.cancel()
		go d.cleanup(l)
	}
	for key, ep := range want {
		if _, ok := d.lanes[key]; ok || ctx.Err() != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cons, err := d.js.CreateOrUpdateConsumer(cctx, DeliveriesStream, d.cfg.laneConsumerConfig(ep.OrgID, ep.ID))
		cancel()
		if err != nil {
			d.log.Warn("starting an endpoint lane failed; retrying later", zap.String("org_id", ep.OrgID), zap.String("endpoint_id", ep.ID), zap.Error(err))
			continue
		}
		lctx, lcancel := context.WithCancel(ctx)
		l := &lane{org: ep.OrgID, id: ep.ID, cancel: lcancel, done: make(chan struct{})}
		d.lanes[key] = l
		go d.runLane(lctx, l, cons)
	}
	d.m.lanes.Set(float64(len(d.lanes)))
}

// cleanup removes a deleted endpoint's consumer and pending deliveries.
// Every instance does it; it is idempotent.
func (d *Dispatcher) cleanup(l *lane) {
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.js.DeleteConsumer(ctx, DeliveriesStream, laneConsumer(l.org, l.id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		d.log.Warn("deleting a lane consumer", zap.String("endpoint_id", l.id), zap.Error(err))
	}
	if s, err := d.js.Stream(ctx, DeliveriesStream); err == nil {
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(deliverySubject(l.org, l.id))); err != nil {
			d.log.Warn("purging a deleted endpoint's deliveries", zap.String("endpoint_id", l.id), zap.Error(err))
		}
	}
}

// runLane delivers one endpoint's messages until ctx ends. When its
// consumer is gone (deleted, or with the deliveries stream) it ends and
// forgets the lane, so the next reconcile creates the consumer again.
func (d *Dispatcher) runLane(ctx context.Context, l *lane, cons jetstream.Consumer) {
	defer close(l.done)
	defer func() {
		if ctx.Err() != nil {
			return
		}
		d.mu.Lock()
		if key := destination.Key(l.org, l.id); d.lanes[key] == l {
			delete(d.lanes, key)
		}
		d.mu.Unlock()
		d.log.Error("an endpoint lane lost its consumer; creating it again", zap.String("org_id", l.org), zap.String("endpoint_id", l.id))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		select {
		case d.relane <- struct{}{}:
		default:
		}
	}()
	it, err := cons.Messages(jetstream.PullMaxMessages(d.cfg.EndpointConcurrency))
	if err != nil {
		d.log.Warn("endpoint lane subscribe", zap.String("endpoint_id", l.id), zap.Error(err))
		return
	}
	go func() { <-ctx.Done(); it.Drain() }()
	// A message is taken from the iterator only when a worker is free to
	// attempt it at once, so what the server hands to this instance waits
	// at most for the iterator's small prefetch to drain.
	free := make(chan struct{}, d.cfg.EndpointConcurrency)
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range d.cfg.EndpointConcurrency {
		wg.Go(func() {
			for {
				free <- struct{}{}
				m, ok := <-msgs
				if !ok {
					return
				}
				d.deliver(ctx, l.org, l.id, m)
			}
		})
	}
	defer func() { close(msgs); wg.Wait() }()
	for {
		if ctx.Err() == nil {
			select {
			case <-free:
			case <-ctx.Done():
			}
		}
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				return
			}
			// Other errors (missed heartbeats) may mean the consumer
			// went with its stream: ask the server.
			ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, ierr := cons.Info(ictx)
			cancel()
			if errors.Is(ierr, jetstream.ErrConsumerNotFound) || errors.Is(ierr, jetstream.ErrStreamNotFound) {
				it.Stop()
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			free <- struct{}{} // the slot was not used
			continue
		}
		if ctx.Err() != nil {
			_ = m.Nak() // taken but not started: back to the stream at once
			continue
		}
		msgs <- m // a worker is waiting for it
	}
}
