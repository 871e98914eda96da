package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/topology"
)

// Streams and consumers the dispatcher declares (in addition to the shared
// streams of platform/topology).
const (
	// DeliveriesStream is the work queue of pending deliveries, one message
	// per (event, endpoint), on DeliveriesSubjects. A message stays until
	// the endpoint's consumer acknowledges it: after a success, or after
	// the delivery finally failed. Retries wait in the consumer's redelivery
	// schedule on the server, so they survive any dispatcher restart.
	DeliveriesStream   = "AUDIT_WEBHOOK_DELIVERIES"
	DeliveriesSubjects = "audit.webhook.deliveries.>"
	// AttemptsStream is the attempt log: one message per attempt on
	// audit.webhook.attempts.<org_id>.<endpoint_id>, kept with limits (a
	// number per endpoint and an age).
	AttemptsStream   = "AUDIT_WEBHOOK_ATTEMPTS"
	AttemptsSubjects = "audit.webhook.attempts.>"
	// FanoutConsumer is the durable consumer of AUDIT_FANOUT every
	// dispatcher instance shares.
	FanoutConsumer = "webhook-dispatcher"
	// RetriesBucket holds the retry position of each delivery that failed
	// and waits for its next attempt: the key "<org_id>.<endpoint_id>.
	// <stream sequence>" holds the attempts made. JetStream's delivery
	// count also counts deliveries no attempt followed (a message released
	// by a stopping instance), so the schedule position is read from here.
	RetriesBucket = "AUDIT_WEBHOOK_RETRIES"
)

// retryStateTTL is how long a retry position outlives its last write:
// longer than the longest wait between two attempts (10 h, or a
// Retry-After of up to MaxRetryAfter). Positions of deliveries that
// settled are deleted at once; the TTL only clears what a crash left.
const retryStateTTL = 7 * 24 * time.Hour

// fanoutAckWait is the fan-out consumer's ack wait.
const fanoutAckWait = 30 * time.Second

// Headers of a delivery message.
const (
	hdrEventID   = "Audit-Event-Id"
	hdrEventTime = "Audit-Event-Received"
	hdrKind      = "Audit-Delivery-Kind"
)

// Delivery kinds.
const (
	KindEvent      = "event"
	KindRecover    = "recover"
	KindCheckpoint = "checkpoint"
)

func deliverySubject(org, endpoint string) string {
	return "audit.webhook.deliveries." + org + "." + endpoint
}

func attemptSubject(org, endpoint string) string {
	return "audit.webhook.attempts." + org + "." + endpoint
}

// laneConsumer names the durable consumer of one endpoint's deliveries.
func laneConsumer(org, endpoint string) string {
	name := "wh_" + org + "_" + endpoint
	if len(name) > 120 {
		sum := sha256.Sum256([]byte(org + "." + endpoint))
		name = "wh_" + hex.EncodeToString(sum[:16])
	}
	return name
}

// TopologyManager is the part of jetstream.JetStream EnsureTopology needs.
type TopologyManager interface {
	CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
	CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
	CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
}

var _ TopologyManager = (jetstream.JetStream)(nil)

// TopologyObjects lists the dispatcher's streams, its durable consumer on
// AUDIT_FANOUT, which starts with the events published after it is first
// created, and the retry-position bucket. The shared streams must exist
// (topology.Ensure).
func TopologyObjects(cfg Config) (topology.Objects, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return topology.Objects{}, err
	}
	return topology.Objects{
		Streams: []jetstream.StreamConfig{{
			Name:        DeliveriesStream,
			Description: "Takumo Audit webhook deliveries waiting for their endpoint (work queue)",
			Subjects:    []string{DeliveriesSubjects},
			Retention:   jetstream.WorkQueuePolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    cfg.DeliveriesMaxBytes,
			MaxMsgs:     -1,
			MaxMsgSize:  256 << 10,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
		}, {
			Name:              AttemptsStream,
			Description:       "Takumo Audit webhook delivery attempts (log, kept with limits)",
			Subjects:          []string{AttemptsSubjects},
			Retention:         jetstream.LimitsPolicy,
			Discard:           jetstream.DiscardOld,
			MaxMsgsPerSubject: cfg.AttemptLogPerEndpoint,
			MaxAge:            cfg.AttemptLogMaxAge,
			MaxBytes:          cfg.AttemptLogMaxBytes,
			MaxMsgs:           -1,
			Storage:           jetstream.FileStorage,
			Replicas:          cfg.Replicas,
		}},
		Consumers: []topology.Consumer{{Stream: topology.FanoutStream, Config: jetstream.ConsumerConfig{
			Durable:        FanoutConsumer,
			Description:    "Takumo Audit webhook dispatcher: events and signed checkpoints into per-endpoint deliveries",
			DeliverPolicy:  jetstream.DeliverNewPolicy,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        fanoutAckWait,
			MaxDeliver:     -1,
			MaxAckPending:  20_000,
			FilterSubjects: []string{topology.EventsSubjects, topology.CheckpointsSubjects},
			Replicas:       cfg.Replicas,
		}}},
		Buckets: []jetstream.KeyValueConfig{{
			Bucket:      RetriesBucket,
			Description: "Takumo Audit webhook deliveries: attempts made by each delivery waiting for a retry",
			History:     1,
			TTL:         retryStateTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		}},
	}, nil
}

// EnsureTopology creates or updates the objects of TopologyObjects. It is
// idempotent; only the topology owner calls it.
func EnsureTopology(ctx context.Context, js TopologyManager, cfg Config) error {
	objs, err := TopologyObjects(cfg)
	if err != nil {
		return err
	}
	for _, s := range objs.Streams {
		if _, err := js.CreateOrUpdateStream(ctx, s); err != nil {
			return fmt.Errorf("dispatcher: stream %s: %w", s.Name, err)
		}
	}
	for _, c := range objs.Consumers {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
			return fmt.Errorf("dispatcher: consumer %s: %w", c.Config.Durable, err)
		}
	}
	for _, b := range objs.Buckets {
		if _, err := js.CreateOrUpdateKeyValue(ctx, b); err != nil {
			return fmt.Errorf("dispatcher: bucket %s: %w", b.Bucket, err)
		}
	}
	return nil
}

func (c Config) laneConsumerConfig(org, endpoint string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       laneConsumer(org, endpoint),
		Description:   "Takumo Audit webhook deliveries of " + org + "/" + endpoint,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.EndpointMaxPending,
		FilterSubject: deliverySubject(org, endpoint),
		Replicas:      c.Replicas,
	}
}
