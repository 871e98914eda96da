package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Missing reports that object (e.g. "consumer AUDIT_EVENTS/ingestor") is
// gone while a reader needs it: an error in the log, the gauge
// audit_topology_missing{object} at 1, and OnMissing, so the owner in
// this process repairs at once. Readers call it (consume.Notifier).
func (v *Verifier) Missing(object string, err error) {
	v.missing.WithLabelValues(object).Set(1)
	v.log.Error(object+" is missing; waiting for it to be recreated (the topology owner re-creates what it owns)", zap.String("object", object), zap.Error(err))
	if v.OnMissing != nil {
		v.OnMissing()
	}
}

// Found reports that object exists again.
func (v *Verifier) Found(object string) {
	v.missing.WithLabelValues(object).Set(0)
	v.log.Info(object+" is back", zap.String("object", object))
}

// RepairReader is what Repair reads and changes: the owner's JetStream.
type RepairReader interface {
	Reader
	Manager
	CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
	DeleteStream(ctx context.Context, name string) error
	CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
	DeleteConsumer(ctx context.Context, stream, consumer string) error
}

var _ RepairReader = (jetstream.JetStream)(nil)

// Repair is the topology owner's periodic check: every object of objs that
// is missing is created again (an error in the log,
// audit_topology_repairs_total{action="recreated"}), and every one whose
// settings drifted from objs is set back (a warning,
// action="corrected"). It goes through every object and returns the
// errors of those it could not repair. Only the owner calls it.
func (v *Verifier) Repair(ctx context.Context, js RepairReader, objs Objects) error {
	var errs []error
	// Consumers of streams that still exist come back before any missing
	// stream is recreated: a recreated AUDIT_FANOUT starts copying (and
	// acknowledging) AUDIT_EVENTS at once, and an event nobody else holds
	// an interest in would leave AUDIT_EVENTS before the ingestor's
	// consumer is back.
	missing := map[string]bool{}
	for _, want := range objs.Streams {
		name := "stream " + want.Name
		now := time.Now()
		s, err := js.Stream(ctx, want.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing[want.Name] = true
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		default:
			v.sawStream(want.Name, now)
			if drift := streamDrift(want, s.CachedInfo().Config); len(drift) > 0 {
				if _, cerr := js.CreateOrUpdateStream(ctx, want); cerr != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, cerr))
				} else {
					v.repaired(name, drift)
				}
			}
		}
	}
	consumers := func(onMissing bool) {
		var gone []Consumer
		for _, want := range objs.Consumers {
			if missing[want.Stream] != onMissing {
				continue
			}
			name := "consumer " + want.Stream + "/" + want.Config.Durable
			var drift []Drift
			info, err := consumerInfo(ctx, js, want)
			switch {
			case errors.Is(err, jetstream.ErrConsumerNotFound) && !onMissing && want.Config.DeliverPolicy == jetstream.DeliverAllPolicy:
				gone = append(gone, want)
				continue
			case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			default:
				if drift = consumerDrift(want.Config, info.Config); len(drift) == 0 {
					continue
				}
			}
			if _, cerr := js.CreateOrUpdateConsumer(ctx, want.Stream, want.Config); cerr != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, cerr))
				continue
			}
			v.repaired(name, drift)
		}
		if len(gone) > 0 {
			errs = append(errs, v.recreateConsumers(ctx, js, gone))
		}
	}
	consumers(false)
	for _, want := range objs.Streams {
		if !missing[want.Name] {
			continue
		}
		created, err := v.recreate(ctx, "stream "+want.Name, streamRecreator(js, want))
		if err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", want.Name, err))
			continue
		}
		if created {
			v.repaired("stream "+want.Name, nil)
		}
	}
	consumers(true)
	for _, want := range objs.Buckets {
		name := "bucket " + want.Bucket
		now := time.Now()
		_, err := js.KeyValue(ctx, want.Bucket)
		if err == nil {
			v.sawStream("KV_"+want.Bucket, now)
			continue
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		created, cerr := v.recreate(ctx, name, bucketRecreator(js, want))
		if cerr != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, cerr))
			continue
		}
		if created {
			v.repaired(name, nil)
		}
	}
	return errors.Join(errs...)
}

func consumerInfo(ctx context.Context, js Reader, want Consumer) (*jetstream.ConsumerInfo, error) {
	s, err := js.Stream(ctx, want.Stream)
	if err != nil {
		return nil, err
	}
	if want.Config.DeliverSubject != "" {
		c, err := s.PushConsumer(ctx, want.Config.Durable)
		if err != nil {
			return nil, err
		}
		return c.CachedInfo(), nil
	}
	c, err := s.Consumer(ctx, want.Config.Durable)
	if err != nil {
		return nil, err
	}
	return c.CachedInfo(), nil
}

// repaired logs and counts one repair: drift nil means recreated.
func (v *Verifier) repaired(object string, drift []Drift) {
	if drift == nil {
		v.repairs.WithLabelValues(object, "recreated").Inc()
		v.log.Error(object+" was missing; the topology owner created it again", zap.String("object", object))
		return
	}
	v.repairs.WithLabelValues(object, "corrected").Inc()
	for _, d := range drift {
		v.drift.WithLabelValues(object, d.Field).Set(0)
		v.log.Warn("topology drift corrected: the server's setting was set back to the configuration",
			zap.String("object", object), zap.String("field", d.Field), zap.String("configured", d.Want), zap.String("server", d.Have))
	}
}

// recreateAttempts bounds how many times recreate creates an object that
// comes up holding the files of a deletion in progress.
const recreateAttempts = 5

// recreator creates one missing stream or bucket for recreate.
type recreator struct {
	// stream is the name of the stream (a bucket's is KV_<bucket>).
	stream string
	// exists reports whether the object is there again.
	exists func(context.Context) (bool, error)
	// create creates it (failing if it exists with other settings) and
	// returns the last sequence the server reports for it: 0 for a new,
	// empty stream, and always 0 when that cannot tell (a bucket).
	create func(context.Context) (uint64, error)
	// remove deletes it; nil when create always returns 0.
	remove func(context.Context) error
}

// recreate creates a missing stream or bucket again and reports whether it
// did (false: it was there again when it looked once more).
//
// Readers notice a deleted stream while the server is still deleting it:
// its consumers go first, its files last. A stream of the same name
// created in that window opens the files being deleted, holding the old
// messages, and loses them a moment later: it keeps answering and can
// store nothing more (and NATS 2.15.2 may panic on a create that meets
// the removal). So recreate waits for the server's announcement of the
// deletion (Deletions), made once the consumers are gone, then Settle;
// and a stream that comes up holding messages it cannot have (a new
// stream starts empty) is deleted and created again after a longer wait,
// up to recreateAttempts times.
func (v *Verifier) recreate(ctx context.Context, object string, r recreator) (bool, error) {
	wait := v.Settle
	if v.Deletions != nil {
		v.existedMu.Lock()
		existed := v.existed[r.stream]
		v.existedMu.Unlock()
		at, err := v.Deletions.Await(ctx, r.stream, existed, v.DeletionWait)
		if err != nil {
			return false, err
		}
		if !at.IsZero() {
			wait = max(0, time.Until(at.Add(v.Settle)))
		}
	}
	for attempt := 1; ; attempt++ {
		if err := sleep(ctx, wait); err != nil {
			return false, err
		}
		switch ok, err := r.exists(ctx); {
		case err != nil:
			return false, err
		case ok:
			return false, nil
		}
		wait = max(2*wait, 100*time.Millisecond)
		last, err := r.create(ctx)
		switch {
		case err != nil && attempt == recreateAttempts:
			return false, err
		case err != nil:
			// The server refuses a create that meets the deletion's
			// last step (error creating store for stream).
			v.log.Warn(object+" could not be created again yet; retrying", zap.String("object", object), zap.Int("attempt", attempt), zap.Error(err))
			continue
		case last == 0:
			v.sawStream(r.stream, time.Now())
			return true, nil
		case attempt == recreateAttempts:
			return false, fmt.Errorf("created again %d times, it still comes up with the messages of a deletion in progress (last sequence %d)", attempt, last)
		}
		v.log.Warn(object+" was created while the server was still deleting it and came up with its old files; deleting it and creating it again",
			zap.String("object", object), zap.Uint64("last_seq", last), zap.Int("attempt", attempt))
		if err := r.remove(ctx); err != nil {
			return false, fmt.Errorf("deleting the copy created over a deletion in progress: %w", err)
		}
	}
}

// recreateConsumers creates the consumers of gone, deleted from streams
// that still exist, again. They deliver from the first message still in
// the stream (DeliverAll): waiting skips none. (One that starts with new
// messages is created at once: a wait would skip those published
// meanwhile.)
//
// The server releases a deleted consumer's readers before it removes the
// consumer's directory, and a consumer of the same name created in
// between loses its directory: it delivers, but nothing it does is kept,
// and after a restart of the server it is gone. Yet on a stream with
// interest retention, every moment without the consumer lets the events
// only it still needs go. So for each one a holding consumer (HoldName:
// pull, never read, from the stream's first message,
// removed by the server after holdInactive if this process dies) is
// created at once, and the consumer itself after Settle, once the
// deletion is over; then the holds are deleted.
func (v *Verifier) recreateConsumers(ctx context.Context, js RepairReader, gone []Consumer) error {
	var errs []error
	var held []Consumer
	for _, want := range gone {
		hold := jetstream.ConsumerConfig{
			Durable:           HoldName(want.Config.Durable),
			Description:       "Takumo Audit: keeps the events of " + want.Config.Durable + " while the topology owner creates it again",
			DeliverPolicy:     jetstream.DeliverAllPolicy,
			AckPolicy:         jetstream.AckExplicitPolicy,
			FilterSubject:     want.Config.FilterSubject,
			FilterSubjects:    want.Config.FilterSubjects,
			InactiveThreshold: holdInactive,
			Replicas:          want.Config.Replicas,
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, want.Stream, hold); err != nil {
			// Without a hold, the consumer's interest comes first.
			v.log.Warn("no holding consumer; creating the consumer at once", zap.String("object", "consumer "+want.Stream+"/"+want.Config.Durable), zap.Error(err))
			if _, err := js.CreateOrUpdateConsumer(ctx, want.Stream, want.Config); err != nil {
				errs = append(errs, fmt.Errorf("consumer %s/%s: %w", want.Stream, want.Config.Durable, err))
			} else {
				v.repaired("consumer "+want.Stream+"/"+want.Config.Durable, nil)
			}
			continue
		}
		held = append(held, want)
	}
	if len(held) > 0 {
		if err := sleep(ctx, v.Settle); err != nil {
			errs = append(errs, err)
		}
	}
	for _, want := range held {
		name := "consumer " + want.Stream + "/" + want.Config.Durable
		if _, err := js.CreateOrUpdateConsumer(ctx, want.Stream, want.Config); err != nil {
			// The hold stays (until it is inactive): the next pass
			// tries again.
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		v.repaired(name, nil)
		if err := js.DeleteConsumer(ctx, want.Stream, HoldName(want.Config.Durable)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			v.log.Warn("holding consumer not deleted; the server removes it once inactive", zap.String("object", name), zap.Duration("inactive", holdInactive), zap.Error(err))
		}
	}
	return errors.Join(errs...)
}

// HoldName is the name of the consumer that holds the events of the
// deleted consumer durable while the owner creates it again.
func HoldName(durable string) string { return durable + "_hold" }

// holdInactive is how long the server keeps a hold nobody deletes.
const holdInactive = 10 * time.Minute

// sawStream records that stream existed at t: a later announcement of
// its deletion is about that stream (recreate).
func (v *Verifier) sawStream(stream string, t time.Time) {
	v.existedMu.Lock()
	defer v.existedMu.Unlock()
	if v.existed == nil {
		v.existed = map[string]time.Time{}
	}
	v.existed[stream] = t
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func streamRecreator(js RepairReader, want jetstream.StreamConfig) recreator {
	return recreator{
		stream: want.Name,
		exists: func(ctx context.Context) (bool, error) {
			_, err := js.Stream(ctx, want.Name)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		create: func(ctx context.Context) (uint64, error) {
			s, err := js.CreateStream(ctx, want)
			if err != nil {
				return 0, err
			}
			return s.CachedInfo().State.LastSeq, nil
		},
		remove: func(ctx context.Context) error {
			if err := js.DeleteStream(ctx, want.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return err
			}
			return nil
		},
	}
}

func bucketRecreator(js RepairReader, want jetstream.KeyValueConfig) recreator {
	return recreator{
		stream: "KV_" + want.Bucket,
		exists: func(ctx context.Context) (bool, error) {
			_, err := js.KeyValue(ctx, want.Bucket)
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		// A bucket is written to as soon as it exists (the log writer's
		// lease), so its state cannot tell the files of a deletion in
		// progress apart: the wait before creating it is what guards it.
		create: func(ctx context.Context) (uint64, error) {
			_, err := js.CreateKeyValue(ctx, want)
			return 0, err
		},
	}
}
