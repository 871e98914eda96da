// Package topology declares the JetStream streams and the consumers shared by
// every Takumo Audit service. The topology owner creates or updates them
// idempotently (Ensure, Apply); every other process waits for them and
// reports drift without changing anything (Verifier, Bind).
//
// AUDIT_EVENTS holds every event on subjects audit.events.<org_id>.<action>.
// It uses interest retention: a message stays until every durable consumer
// that was bound when it arrived has acknowledged it, so the stream is a
// buffer in front of the consumers, never the archive. It denies delete and
// purge, deduplicates publishes by Nats-Msg-Id within a window, and discards
// new messages when full, so a full stream makes publishing fail loudly
// instead of dropping events nobody has read yet.
//
// AUDIT_FANOUT copies every event for the optional consumers — the webhook
// dispatcher and SIEM destinations — with limits retention, so their
// backlog can never hold AUDIT_EVENTS: only the ingestor and the copy into
// AUDIT_FANOUT do. It also binds the subjects the log writer publishes
// signed checkpoints on (audit.checkpoints.<org_id>.<key_id>, package
// platform/tlog/witness), so the same consumers deliver them to the orgs'
// witnesses.
//
// The transparency log's writer holds its single-writer lease in the
// key-value bucket AUDIT_TLOG_LEASE, declared here and created by the
// owner, so the writer's identity needs no right to create anything. It
// reads no stream: the sealing ingestor hands it the events it logs. Ensure
// leaves the durable consumer tlog through which earlier versions' writer
// read AUDIT_EVENTS: the messages it has not acknowledged are what the
// upgraded writer checks the events that writer had not logged against,
// and the writer removes it once they are logged
// (logwriter.LegacyConsumer).
//
// AUDIT_DEAD_LETTER holds messages a consumer could not process, each with
// the reason and its origin in headers. It keeps them until an operator
// removes them; like the events stream it refuses publishes when full.
package topology

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/tlog/witness"
)

// Names of the streams, subjects and durable consumers.
const (
	EventsStream       = "AUDIT_EVENTS"
	EventsSubjects     = "audit.events.>"
	DeadLetterStream   = "AUDIT_DEAD_LETTER"
	DeadLetterSubjects = "audit.dead_letter.>"
	// IngestorConsumer is the durable pull consumer every ingestor instance shares.
	IngestorConsumer = "ingestor"
	// FanoutStream holds a copy of every event for the optional consumers
	// (the webhook dispatcher, SIEM destinations), with limits retention:
	// when it is full its oldest events go, so a stalled optional consumer
	// loses its own oldest backlog instead of holding AUDIT_EVENTS until
	// publishing fails for everyone. Its messages keep their subjects.
	FanoutStream = "AUDIT_FANOUT"
	// FanoutSource is the durable consumer on AUDIT_EVENTS through which
	// the fan-out stream sources events; it acknowledges them once copied.
	FanoutSource = "fanout"
	// fanoutDeliverSubject carries the sourced events to the fan-out stream.
	fanoutDeliverSubject = "audit.fanout.deliver"
	// CheckpointsSubjects are the signed checkpoints the log writer
	// publishes into AUDIT_FANOUT.
	CheckpointsSubjects = witness.Subjects
	// TlogLeaseBucket holds the log writer's lease: one key, created only
	// if absent, renewed by compare-and-set, expiring after its TTL.
	TlogLeaseBucket = "AUDIT_TLOG_LEASE"
)

// Headers set on dead-lettered messages.
const (
	HeaderDLReason    = "Audit-Dead-Letter-Reason"
	HeaderDLConsumer  = "Audit-Dead-Letter-Consumer"
	HeaderDLSubject   = "Audit-Dead-Letter-Subject"
	HeaderDLStreamSeq = "Audit-Dead-Letter-Stream-Seq"
	HeaderDLTime      = "Audit-Dead-Letter-Time"
)

// Config sizes the streams. The zero value is not valid: call SetDefaults or
// fill every field, then Validate.
type Config struct {
	// Replicas is 1 on a single node and 3 in a cluster.
	Replicas int
	// MaxBytes caps the events stream; when reached, publishes fail.
	MaxBytes int64
	// DeadLetterMaxBytes caps the dead-letter stream.
	DeadLetterMaxBytes int64
	// MaxMsgSize caps one message; it must exceed the largest valid event.
	MaxMsgSize int32
	// DuplicateWindow is how long a Nats-Msg-Id is remembered.
	DuplicateWindow time.Duration
	// IngestAckWait is how long the ingestor may hold a message before
	// JetStream redelivers it. The ingestor extends it while it retries.
	IngestAckWait time.Duration
	// IngestMaxAckPending bounds unacknowledged messages across all
	// ingestor instances; it must exceed the ingestor's batch size.
	IngestMaxAckPending int
	// FanoutMaxBytes caps the fan-out stream; beyond it the oldest events
	// leave it, and consumers that had not read them skip them.
	FanoutMaxBytes int64
	// FanoutMaxAge bounds how long the fan-out stream keeps an event, and
	// so how far back a SIEM replay can reach from the stream.
	FanoutMaxAge time.Duration
	// TlogLeaseTTL is how long the log writer's lease lives without
	// renewal: a standby takes over this long after the active writer
	// stopped. The writer reads it from the bucket.
	TlogLeaseTTL time.Duration
}

// SetDefaults fills zero fields with production defaults.
func (c *Config) SetDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 8 << 30
	}
	if c.DeadLetterMaxBytes == 0 {
		c.DeadLetterMaxBytes = 1 << 30
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = 64 << 10
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.IngestAckWait == 0 {
		c.IngestAckWait = 30 * time.Second
	}
	if c.IngestMaxAckPending == 0 {
		c.IngestMaxAckPending = 50_000
	}
	if c.FanoutMaxBytes == 0 {
		c.FanoutMaxBytes = 4 << 30
	}
	if c.FanoutMaxAge == 0 {
		c.FanoutMaxAge = 7 * 24 * time.Hour
	}
	if c.TlogLeaseTTL == 0 {
		c.TlogLeaseTTL = 15 * time.Second
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("replicas must be 1, 3 or 5, got %d", c.Replicas))
	}
	if c.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("stream max bytes must be positive, got %d", c.MaxBytes))
	}
	if c.DeadLetterMaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("dead-letter max bytes must be positive, got %d", c.DeadLetterMaxBytes))
	}
	if c.MaxMsgSize < 33<<10 {
		errs = append(errs, fmt.Errorf("max message size must be at least 33 KiB to hold a 32 KiB event, got %d", c.MaxMsgSize))
	}
	if c.DuplicateWindow < time.Second {
		errs = append(errs, fmt.Errorf("duplicate window must be at least 1s, got %s", c.DuplicateWindow))
	}
	if c.IngestAckWait < time.Second {
		errs = append(errs, fmt.Errorf("ingest ack wait must be at least 1s, got %s", c.IngestAckWait))
	}
	if c.IngestMaxAckPending < 1 {
		errs = append(errs, fmt.Errorf("ingest max ack pending must be positive, got %d", c.IngestMaxAckPending))
	}
	if c.FanoutMaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("fan-out max bytes must be positive, got %d", c.FanoutMaxBytes))
	}
	if c.FanoutMaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("fan-out max age must be at least 1m, got %s", c.FanoutMaxAge))
	}
	if c.TlogLeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("log writer lease TTL must be at least 1s, got %s", c.TlogLeaseTTL))
	}
	return errors.Join(errs...)
}

// EventsStreamConfig is the configuration of AUDIT_EVENTS.
func (c Config) EventsStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "Takumo Audit events: append-only buffer in front of the consumers",
		Subjects:    []string{EventsSubjects},
		Retention:   jetstream.InterestPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    c.MaxBytes,
		MaxMsgs:     -1,
		MaxAge:      0,
		MaxMsgSize:  c.MaxMsgSize,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
	}
}

// DeadLetterStreamConfig is the configuration of AUDIT_DEAD_LETTER.
func (c Config) DeadLetterStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "Takumo Audit messages a consumer could not process, with the reason in headers",
		Subjects:    []string{DeadLetterSubjects},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    c.DeadLetterMaxBytes,
		MaxMsgs:     -1,
		MaxMsgSize:  c.MaxMsgSize + 8<<10,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
	}
}

// IngestorConsumerConfig is the durable pull consumer of the ingestor.
// MaxDeliver is unlimited: a message the store cannot take yet is retried
// until it can, and a message that can never be stored is dead-lettered
// explicitly by the ingestor.
func (c Config) IngestorConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       IngestorConsumer,
		Description:   "Takumo Audit ingestor: events into ClickHouse",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.IngestAckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.IngestMaxAckPending,
		FilterSubject: EventsSubjects,
		Replicas:      c.Replicas,
	}
}

// FanoutSourceConsumerConfig is the consumer on AUDIT_EVENTS the fan-out
// stream sources through: a push consumer whose acknowledgements follow
// the stream's flow control, so AUDIT_EVENTS keeps an event until it has
// been copied.
func (c Config) FanoutSourceConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        FanoutSource,
		Description:    "Takumo Audit: events copied into " + FanoutStream,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckFlowControlPolicy,
		DeliverSubject: fanoutDeliverSubject,
		FlowControl:    true,
		IdleHeartbeat:  5 * time.Second,
		FilterSubject:  EventsSubjects,
		Replicas:       c.Replicas,
	}
}

// TlogLeaseBucketConfig is the log writer's lease bucket.
func (c Config) TlogLeaseBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      TlogLeaseBucket,
		Description: "Takumo Audit log writer lease",
		TTL:         c.TlogLeaseTTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// FanoutStreamConfig is the configuration of AUDIT_FANOUT.
func (c Config) FanoutStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        FanoutStream,
		Description: "Takumo Audit events and signed checkpoints for webhooks and SIEM destinations; the oldest go when it is full",
		Subjects:    []string{CheckpointsSubjects},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxBytes:    c.FanoutMaxBytes,
		MaxAge:      c.FanoutMaxAge,
		MaxMsgs:     -1,
		MaxMsgSize:  c.MaxMsgSize,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		DenyDelete:  true,
		DenyPurge:   true,
		Sources: []*jetstream.StreamSource{{
			Name:     EventsStream,
			Consumer: &jetstream.StreamConsumerSource{Name: FanoutSource, DeliverSubject: fanoutDeliverSubject},
		}},
	}
}

// StreamManager is the part of jetstream.JetStream that Ensure needs.
type StreamManager interface {
	CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
	CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
}

var _ StreamManager = (jetstream.JetStream)(nil)

// Ensure creates or updates the shared streams, the ingestor's durable
// consumer, the fan-out source, and the log writer's lease bucket, and
// removes the log writer's consumer of earlier versions. It is idempotent. Only the topology
// owner calls it (platform/roles); every other process checks the same
// objects with a Verifier (Config.Objects) and changes nothing. The
// ingestor's consumer is created here, not by the ingestor, because the
// events stream keeps a message only for consumers that exist when it
// arrives.
func Ensure(ctx context.Context, js StreamManager, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	events, err := js.CreateOrUpdateStream(ctx, cfg.EventsStreamConfig())
	if err != nil {
		return streamError(cfg.EventsStreamConfig(), err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg.DeadLetterStreamConfig()); err != nil {
		return streamError(cfg.DeadLetterStreamConfig(), err)
	}
	if _, err := events.CreateOrUpdateConsumer(ctx, cfg.IngestorConsumerConfig()); err != nil {
		return fmt.Errorf("topology: consumer %s: %w", IngestorConsumer, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, cfg.TlogLeaseBucketConfig()); err != nil {
		return fmt.Errorf("topology: bucket %s: %w", TlogLeaseBucket, err)
	}
	if _, err := events.CreateOrUpdateConsumer(ctx, cfg.FanoutSourceConsumerConfig()); err != nil {
		return fmt.Errorf("topology: consumer %s: %w", FanoutSource, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg.FanoutStreamConfig()); err != nil {
		return streamError(cfg.FanoutStreamConfig(), err)
	}
	return nil
}

// ErrStorage is returned by Ensure and Apply when the NATS server cannot
// reserve a stream's file storage: the MaxBytes of its streams do not fit
// in its max_file_store (by default 75 % of the free disk under its store
// directory, read when it starts).
var ErrStorage = errors.New("JetStream cannot reserve the streams' file storage")

// streamError is the error of creating or updating stream s. A refusal
// for lack of storage (ErrStorage) says what s reserves.
func streamError(s jetstream.StreamConfig, err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) && api.ErrorCode == storageExceeded {
		return fmt.Errorf("topology: stream %s: %w: it reserves %s on each server holding it, and a NATS server reserves "+
			"at most its max_file_store over all its streams, by default 75%% of the free disk under its store directory: "+
			"free disk space there or make the streams smaller: %w", s.Name, ErrStorage, gib(s.MaxBytes), err)
	}
	return fmt.Errorf("topology: stream %s: %w", s.Name, err)
}

// gib formats a size in bytes as GiB.
func gib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<30), 'f', -1, 64) + " GiB" }

// DeadLetterSubject is the subject dead letters of a consumer are published on.
func DeadLetterSubject(consumer string) string {
	return "audit.dead_letter." + consumer
}

// IngestorAckFloor returns a function reading the acknowledgement floor
// of the ingestor's consumer with js: every message at or below it is
// stored. The log writer recovers from it when it starts sealing.
func IngestorAckFloor(js jetstream.JetStream) func(context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) {
		c, err := js.Consumer(ctx, EventsStream, IngestorConsumer)
		if err != nil {
			return 0, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.AckFloor.Stream, nil
	}
}
