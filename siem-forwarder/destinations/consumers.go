package destinations

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/topology"
)

// ConsumerConfig is the durable consumer of d, starting at start (nil:
// with the next event).
func (s *Store) ConsumerConfig(d Destination, start *time.Time) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable:       ConsumerName(d),
		Description:   "Takumo Audit SIEM destination " + d.OrgID + "/" + d.ID,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: s.cfg.MaxAckPending,
		FilterSubject: FilterSubject(d.OrgID),
		Replicas:      s.cfg.Replicas,
	}
	if start != nil {
		t := start.UTC()
		c.DeliverPolicy, c.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return c
}

// EnsureConsumer creates d's consumer if it does not exist, starting with
// the next event. An existing consumer keeps its position; one that
// selects only the org's events (made before checkpoints were delivered)
// is widened to FilterSubject, from its position on.
func (s *Store) EnsureConsumer(ctx context.Context, d Destination) (jetstream.Consumer, error) {
	c, err := s.js.Consumer(ctx, topology.FanoutStream, ConsumerName(d))
	if err == nil {
		cfg := c.CachedInfo().Config
		if cfg.FilterSubject == legacyFilterSubject(d.OrgID) && len(cfg.FilterSubjects) == 0 {
			cfg.FilterSubject = FilterSubject(d.OrgID)
			if c, err = s.js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, cfg); err != nil {
				return nil, fmt.Errorf("destinations: widen the consumer of %s to checkpoints: %w", d.ID, err)
			}
		}
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("destinations: consumer of %s: %w", d.ID, err)
	}
	c, err = s.js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, s.ConsumerConfig(d, d.ReplayFrom))
	if err != nil {
		return nil, fmt.Errorf("destinations: create consumer of %s: %w", d.ID, err)
	}
	return c, nil
}

// Replay makes the destination deliver again every event of its org the
// fan-out stream still holds from the given time on: a new generation's
// consumer starts with DeliverByStartTime and forwarders restart delivery
// on it. It returns the oldest event time the stream holds; events older
// than that are no longer in it (it is a bounded copy, not the archive).
func (s *Store) Replay(ctx context.Context, orgID, id string, from time.Time) (Destination, time.Time, error) {
	d, err := s.Get(ctx, orgID, id)
	if err != nil {
		return Destination{}, time.Time{}, err
	}
	var oldest time.Time
	if st, err := s.js.Stream(ctx, topology.FanoutStream); err == nil {
		if info, err := st.Info(ctx); err == nil {
			oldest = info.State.FirstTime
		}
	}
	from = from.UTC()
	prev := d
	d.ReplayFrom = &from
	d.Generation++
	d.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	// The new generation's consumer exists before the old one goes, so the
	// destination always has a position in the stream.
	if _, err := s.js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, s.ConsumerConfig(d, &from)); err != nil {
		return Destination{}, time.Time{}, fmt.Errorf("destinations: replay %s: %w", id, err)
	}
	next := d
	if d, err = s.put(ctx, d); err != nil {
		_ = s.js.DeleteConsumer(ctx, topology.FanoutStream, ConsumerName(next))
		return Destination{}, time.Time{}, err
	}
	if err := s.js.DeleteConsumer(ctx, topology.FanoutStream, ConsumerName(prev)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return d, oldest, fmt.Errorf("destinations: replay %s: delete the previous consumer: %w", id, err)
	}
	return d, oldest, nil
}

// Lag is the number of the destination's events not yet acknowledged,
// read from its consumer.
func (s *Store) Lag(ctx context.Context, d Destination) (uint64, error) {
	c, err := s.js.Consumer(ctx, topology.FanoutStream, ConsumerName(d))
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}
