package topology

import (
	"context"
	"errors"
	"fmt"

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
		s, err := js.Stream(ctx, want.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing[want.Name] = true
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		default:
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
		for _, want := range objs.Consumers {
			if missing[want.Stream] != onMissing {
				continue
			}
			name := "consumer " + want.Stream + "/" + want.Config.Durable
			var drift []Drift
			info, err := consumerInfo(ctx, js, want)
			switch {
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
	}
	consumers(false)
	for _, want := range objs.Streams {
		if !missing[want.Name] {
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, want); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", want.Name, err))
			continue
		}
		v.repaired("stream "+want.Name, nil)
	}
	consumers(true)
	for _, want := range objs.Buckets {
		name := "bucket " + want.Bucket
		_, err := js.KeyValue(ctx, want.Bucket)
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if _, cerr := js.CreateOrUpdateKeyValue(ctx, want); cerr != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, cerr))
			continue
		}
		v.repaired(name, nil)
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
