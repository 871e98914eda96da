package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Objects is a set of streams, durable consumers and key-value buckets a
// process depends on. The topology owner creates or updates them (Apply);
// every other process only checks them (Verifier.Verify).
type Objects struct {
	Streams   []jetstream.StreamConfig
	Consumers []Consumer
	Buckets   []jetstream.KeyValueConfig
}

// Consumer is a durable consumer on a stream.
type Consumer struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Objects lists the shared streams and consumers Ensure creates.
func (c Config) Objects() Objects {
	return Objects{
		Streams: []jetstream.StreamConfig{c.EventsStreamConfig(), c.DeadLetterStreamConfig(), c.FanoutStreamConfig()},
		Consumers: []Consumer{
			{Stream: EventsStream, Config: c.IngestorConsumerConfig()},
			{Stream: EventsStream, Config: c.FanoutSourceConsumerConfig()},
		},
	}
}

// TlogObjects lists the log writer's lease bucket, which Ensure creates
// and only the log writer verifies (other identities may not read it).
func (c Config) TlogObjects() Objects {
	return Objects{Buckets: []jetstream.KeyValueConfig{c.TlogLeaseBucketConfig()}}
}

// Add returns o with the objects of more appended.
func (o Objects) Add(more Objects) Objects {
	return Objects{
		Streams:   append(slices.Clone(o.Streams), more.Streams...),
		Consumers: append(slices.Clone(o.Consumers), more.Consumers...),
		Buckets:   append(slices.Clone(o.Buckets), more.Buckets...),
	}
}

// Manager is the part of jetstream.JetStream Apply needs.
type Manager interface {
	CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
	CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
	CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
}

var _ Manager = (jetstream.JetStream)(nil)

// Apply creates or updates objs: the streams in order, then the consumers,
// then the buckets. Only the topology owner calls it.
func Apply(ctx context.Context, js Manager, objs Objects) error {
	for _, s := range objs.Streams {
		if _, err := js.CreateOrUpdateStream(ctx, s); err != nil {
			return streamError(s, err)
		}
	}
	for _, c := range objs.Consumers {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
			return fmt.Errorf("topology: consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
	}
	for _, b := range objs.Buckets {
		if _, err := js.CreateOrUpdateKeyValue(ctx, b); err != nil {
			return fmt.Errorf("topology: bucket %s: %w", b.Bucket, err)
		}
	}
	return nil
}

// Reader is the part of jetstream.JetStream a Verifier needs.
type Reader interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
	KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error)
}

var _ Reader = (jetstream.JetStream)(nil)

// Drift is one setting of an existing object that differs from what this
// process is configured to expect.
type Drift struct {
	Object string // e.g. "stream AUDIT_EVENTS", "consumer AUDIT_EVENTS/ingestor"
	Field  string // e.g. "max_bytes", "ack_wait"
	Want   string // this process's configuration
	Have   string // the server's
}

// Verifier waits for the objects a process needs and reports drift; it
// never creates or changes anything. Safe for concurrent use.
type Verifier struct {
	js      Reader
	log     *zap.Logger
	drift   *prometheus.GaugeVec
	missing *prometheus.GaugeVec
	repairs *prometheus.CounterVec
	// MaxBackoff caps the wait between checks of a missing object.
	MaxBackoff time.Duration
	// Settle is how long Repair waits before it creates a missing stream
	// or bucket again: after the server announced its deletion when
	// Deletions is set and announces it within DeletionWait, from when it
	// was found missing otherwise (see recreate).
	Settle time.Duration
	// Deletions, when set, is where Repair learns when the server deleted
	// a stream; DeletionWait is how long it waits for that announcement.
	Deletions    *Deletions
	DeletionWait time.Duration

	existedMu sync.Mutex
	existed   map[string]time.Time // stream → last time Repair saw it
	// OnMissing, when set, is called after an object is reported missing
	// (Missing): the topology owner of the process repairs at once.
	OnMissing func()
}

// NewVerifier returns a verifier reading through js. It registers the
// gauge audit_topology_drift{object,field} (1 while the setting differs)
// on reg when reg is not nil. log may be nil.
func NewVerifier(js Reader, log *zap.Logger, reg prometheus.Registerer) *Verifier {
	if log == nil {
		log = zap.NewNop()
	}
	v := &Verifier{js: js, log: log, MaxBackoff: 5 * time.Second, Settle: 500 * time.Millisecond, DeletionWait: 5 * time.Second,
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "audit_topology_drift",
			Help: "1 when a setting of a stream, consumer or bucket differs from this process's configuration; the topology owner's configuration wins.",
		}, []string{"object", "field"}),
		missing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "audit_topology_missing",
			Help: "1 while a stream or consumer a reader of this process needs is missing (deleted) and it waits for it to be recreated.",
		}, []string{"object"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_topology_repairs_total",
			Help: "Repairs made by the topology owner: objects recreated (action=recreated) and settings set back to the configuration (action=corrected).",
		}, []string{"object", "action"}),
	}
	if reg != nil {
		reg.MustRegister(v.drift, v.missing, v.repairs)
	}
	return v
}

// Using returns a verifier that reads through js (another identity's
// connection) and reports drift on the same metric.
func (v *Verifier) Using(js Reader) *Verifier {
	return &Verifier{js: js, log: v.log, drift: v.drift, MaxBackoff: v.MaxBackoff, Settle: v.Settle}
}

// Verify waits, with backoff, until every object of objs exists, then
// compares their settings with objs and reports each difference (log line
// and metric). It returns the drift found, or ctx's error if an object
// never appeared.
func (v *Verifier) Verify(ctx context.Context, objs Objects) ([]Drift, error) {
	var all []Drift
	for _, want := range objs.Streams {
		s, err := waitFor(ctx, v, "stream "+want.Name, func(ctx context.Context) (jetstream.Stream, error) {
			return v.js.Stream(ctx, want.Name)
		})
		if err != nil {
			return all, err
		}
		all = append(all, v.report("stream "+want.Name, streamDrift(want, s.CachedInfo().Config))...)
	}
	for _, want := range objs.Consumers {
		name := "consumer " + want.Stream + "/" + want.Config.Durable
		info, err := waitFor(ctx, v, name, func(ctx context.Context) (*jetstream.ConsumerInfo, error) {
			s, err := v.js.Stream(ctx, want.Stream)
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
		})
		if err != nil {
			return all, err
		}
		all = append(all, v.report(name, consumerDrift(want.Config, info.Config))...)
	}
	for _, want := range objs.Buckets {
		if _, d, err := v.Bucket(ctx, want); err != nil {
			return all, err
		} else {
			all = append(all, d...)
		}
	}
	return all, nil
}

// Bucket waits for the bucket of want to exist and binds to it, reporting
// drift of its history, replicas and storage.
func (v *Verifier) Bucket(ctx context.Context, want jetstream.KeyValueConfig) (jetstream.KeyValue, []Drift, error) {
	name := "bucket " + want.Bucket
	kv, err := waitFor(ctx, v, name, func(ctx context.Context) (jetstream.KeyValue, error) {
		return v.js.KeyValue(ctx, want.Bucket)
	})
	if err != nil {
		return nil, nil, err
	}
	s, err := v.js.Stream(ctx, "KV_"+want.Bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("topology: %s: %w", name, err)
	}
	have := s.CachedInfo().Config
	var d []Drift
	history := int64(want.History)
	if history == 0 {
		history = 1
	}
	d = cmp(d, "history", history, have.MaxMsgsPerSubject)
	if want.Replicas != 0 {
		d = cmp(d, "replicas", want.Replicas, have.Replicas)
	}
	d = cmp(d, "storage", want.Storage, have.Storage)
	if want.MaxBytes > 0 {
		d = cmp(d, "max_bytes", want.MaxBytes, have.MaxBytes)
	}
	if want.TTL > 0 {
		d = cmp(d, "ttl", want.TTL, have.MaxAge)
	}
	return kv, v.report(name, d), nil
}

// ErrWaiting wraps the last lookup error when ctx ends while an object is
// still missing.
var ErrWaiting = errors.New("topology: gave up waiting for an object the topology owner creates")

func waitFor[T any](ctx context.Context, v *Verifier, name string, get func(context.Context) (T, error)) (T, error) {
	wait := 100 * time.Millisecond
	logged := time.Time{}
	for {
		got, err := get(ctx)
		if err == nil {
			return got, nil
		}
		notFound := errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
			errors.Is(err, jetstream.ErrBucketNotFound)
		if time.Since(logged) > 30*time.Second {
			msg := "waiting for " + name + ", which the topology owner creates (auditd, or auditd topology in separate deployments)"
			if !notFound {
				msg = "waiting for " + name
			}
			v.log.Warn(msg, zap.Error(err), zap.Duration("retry_in", wait))
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("%w: %s: %w", ErrWaiting, name, errors.Join(err, ctx.Err()))
		case <-time.After(wait):
		}
		wait = min(2*wait, v.MaxBackoff)
	}
}

func (v *Verifier) report(object string, drift []Drift) []Drift {
	for i := range drift {
		drift[i].Object = object
		v.drift.WithLabelValues(object, drift[i].Field).Set(1)
		v.log.Warn("topology drift: the server's setting differs from this process's configuration; it is left as is (the topology owner decides)",
			zap.String("object", object), zap.String("field", drift[i].Field),
			zap.String("configured", drift[i].Want), zap.String("server", drift[i].Have))
	}
	return drift
}

func cmp[T comparable](d []Drift, field string, want, have T) []Drift {
	if want != have {
		d = append(d, Drift{Field: field, Want: fmt.Sprint(want), Have: fmt.Sprint(have)})
	}
	return d
}

func streamDrift(want, have jetstream.StreamConfig) []Drift {
	var d []Drift
	if !slices.Equal(want.Subjects, have.Subjects) {
		d = append(d, Drift{Field: "subjects", Want: fmt.Sprint(want.Subjects), Have: fmt.Sprint(have.Subjects)})
	}
	d = cmp(d, "retention", want.Retention, have.Retention)
	d = cmp(d, "discard", want.Discard, have.Discard)
	d = cmp(d, "max_bytes", want.MaxBytes, have.MaxBytes)
	d = cmp(d, "max_age", want.MaxAge, have.MaxAge)
	if want.MaxMsgSize != 0 {
		d = cmp(d, "max_msg_size", want.MaxMsgSize, have.MaxMsgSize)
	}
	if want.MaxMsgsPerSubject != 0 {
		d = cmp(d, "max_msgs_per_subject", want.MaxMsgsPerSubject, have.MaxMsgsPerSubject)
	}
	if want.Replicas != 0 {
		d = cmp(d, "replicas", want.Replicas, have.Replicas)
	}
	if want.Duplicates != 0 {
		d = cmp(d, "duplicate_window", want.Duplicates, have.Duplicates)
	}
	return d
}

func consumerDrift(want, have jetstream.ConsumerConfig) []Drift {
	var d []Drift
	d = cmp(d, "filter_subject", want.FilterSubject, have.FilterSubject)
	if !slices.Equal(want.FilterSubjects, have.FilterSubjects) {
		d = append(d, Drift{Field: "filter_subjects", Want: fmt.Sprint(want.FilterSubjects), Have: fmt.Sprint(have.FilterSubjects)})
	}
	d = cmp(d, "ack_policy", want.AckPolicy, have.AckPolicy)
	if want.AckWait != 0 {
		d = cmp(d, "ack_wait", want.AckWait, have.AckWait)
	}
	if want.MaxAckPending != 0 {
		d = cmp(d, "max_ack_pending", want.MaxAckPending, have.MaxAckPending)
	}
	if want.MaxDeliver != 0 {
		d = cmp(d, "max_deliver", want.MaxDeliver, have.MaxDeliver)
	}
	if want.Replicas != 0 && have.Replicas != 0 {
		d = cmp(d, "replicas", want.Replicas, have.Replicas)
	}
	return d
}

// Bind returns js with CreateOrUpdateKeyValue replaced by a wait for the
// bucket and a drift check: a store that opens its bucket through it binds
// to the bucket the topology owner created instead of creating or
// updating it. Everything else passes through to js.
func Bind(js jetstream.JetStream, v *Verifier) jetstream.JetStream {
	return binder{JetStream: js, v: v}
}

type binder struct {
	jetstream.JetStream
	v *Verifier
}

func (b binder) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, _, err := b.v.Bucket(ctx, cfg)
	return kv, err
}
