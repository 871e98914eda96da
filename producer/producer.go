package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/takumo/audit/schemas"
)

// ErrClosed is returned by Emit and EmitAsync after Close.
var ErrClosed = errors.New("producer: closed")

// InvalidEventError reports why an event was refused before publishing.
// Nothing was published. It unwraps to the *schemas.ValidationError or
// encoding error that caused it.
type InvalidEventError struct {
	EventID string
	Action  string
	Err     error
}

func (e *InvalidEventError) Error() string {
	return fmt.Sprintf("producer: invalid event %s (%s): %v", e.EventID, e.Action, e.Err)
}

func (e *InvalidEventError) Unwrap() error { return e.Err }

// PublishError reports an event JetStream did not acknowledge, after
// Attempts tries. It unwraps to the last error.
type PublishError struct {
	EventID  string
	Attempts int
	Err      error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("producer: event %s not acknowledged after %d attempt(s): %v", e.EventID, e.Attempts, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

// Receipt is JetStream's acknowledgement of one event.
type Receipt struct {
	EventID string
	Stream  string
	Seq     uint64
	// Duplicate is true when the stream already held this event id: a
	// retried publish that was stored once.
	Duplicate bool
}

// Publisher is the part of jetstream.JetStream the producer uses: Emit
// publishes through it, and EmitAsync through a JetStream context of the
// producer's own on the same connection, whose acknowledgement handlers
// are the producer's.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
	Conn() *nats.Conn
}

var _ Publisher = (jetstream.JetStream)(nil)

// Producer validates audit events and publishes them to the AUDIT_EVENTS
// stream. Emit, EmitAsync and Flush are safe for concurrent use. After
// Close, Emit and EmitAsync return ErrClosed.
type Producer struct {
	js      Publisher
	async   jetstream.JetStream // EmitAsync's context, with the producer's handlers
	batch   jetstream.JetStream // PublishBatch's context
	catalog *schemas.Catalog
	now     func() time.Time
	retry   RetryPolicy
	onError func(schemas.Event, error)
	source  string

	window   chan struct{} // one token per event in flight
	inflight sync.WaitGroup
	// flights holds each message handed to the asynchronous publisher
	// until it completes, and whether its retry started: the publisher can
	// report one message twice (its error handler, when a reconnection or
	// an ack timeout fails the message, and PublishMsgAsync's error, when
	// sending it then fails too), and a message completes once.
	flightMu sync.Mutex
	flights  map[*nats.Msg]bool // true once its retry started
	closed   atomic.Bool
	closeMu  sync.RWMutex // held for reading while an EmitAsync publishes

	errMu sync.Mutex
	errs  []error
}

// RetryPolicy bounds how a publish is retried. The first attempt waits at
// most AttemptTimeout for JetStream's acknowledgement, each later one twice
// as long as the one before, up to 8 times AttemptTimeout: an attempt lost
// with a broker that restarted or a stream leader that moved is abandoned
// and sent again with the same message id, which the stream stores once.
// Between failed attempts the delay grows from Initial by Multiplier up to
// Max, with jitter. Emit retries until its context ends; without a
// deadline on the context, and for EmitAsync, for at most MaxElapsed.
type RetryPolicy struct {
	Initial        time.Duration
	Max            time.Duration
	Multiplier     float64
	MaxElapsed     time.Duration
	AttemptTimeout time.Duration
}

// DefaultRetryPolicy is the policy of a producer without WithRetry.
var DefaultRetryPolicy = RetryPolicy{
	Initial:        50 * time.Millisecond,
	Max:            time.Second,
	Multiplier:     2,
	MaxElapsed:     30 * time.Second,
	AttemptTimeout: 2 * time.Second,
}

// Option configures a Producer.
type Option func(*Producer)

// WithCatalog validates against c instead of the built-in catalog, so
// host applications can add their own actions.
func WithCatalog(c *schemas.Catalog) Option { return func(p *Producer) { p.catalog = c } }

// WithSource names the service writing through this producer: it fills
// context.source of every event that has none, so each stored event says
// which service wrote it. The HTTP ingest API fills the same field from
// the service key a request was made with ("<service>/<key id>"), so the
// same event written both ways is stored with the same bytes when the
// producer's source is the same string. It must be at most
// schemas.MaxContextLen bytes, or events are refused as invalid.
func WithSource(source string) Option { return func(p *Producer) { p.source = source } }

// WithMaxInFlight bounds EmitAsync's unacknowledged events (default 4000).
// EmitAsync blocks while the window is full.
func WithMaxInFlight(n int) Option {
	return func(p *Producer) {
		if n > 0 {
			p.window = make(chan struct{}, n)
		}
	}
}

// WithRetry replaces the default retry policy (DefaultRetryPolicy). Zero
// fields take the default's values.
func WithRetry(r RetryPolicy) Option {
	return func(p *Producer) {
		d := DefaultRetryPolicy
		if r.Initial <= 0 {
			r.Initial = d.Initial
		}
		if r.Max <= 0 {
			r.Max = d.Max
		}
		if r.Multiplier < 1 {
			r.Multiplier = d.Multiplier
		}
		if r.MaxElapsed <= 0 {
			r.MaxElapsed = d.MaxElapsed
		}
		if r.AttemptTimeout <= 0 {
			r.AttemptTimeout = d.AttemptTimeout
		}
		p.retry = r
	}
}

// WithClock sets the clock used for occurred_at when an event has none.
func WithClock(now func() time.Time) Option { return func(p *Producer) { p.now = now } }

// WithAsyncErrorHandler is called, from a producer goroutine, for each
// EmitAsync event that finally failed. Flush also returns these errors.
func WithAsyncErrorHandler(f func(schemas.Event, error)) Option {
	return func(p *Producer) { p.onError = f }
}

// New returns a producer publishing through js, typically a
// jetstream.JetStream. The stream must exist (every Takumo Audit service
// creates it at start-up).
func New(js Publisher, opts ...Option) (*Producer, error) {
	if js == nil {
		return nil, errors.New("producer: nil publisher")
	}
	p := &Producer{
		js:      js,
		now:     time.Now,
		retry:   DefaultRetryPolicy,
		window:  make(chan struct{}, 4000),
		flights: map[*nats.Msg]bool{},
	}
	for _, o := range opts {
		o(p)
	}
	if p.catalog == nil {
		p.catalog = schemas.NewCatalog()
	}
	nc := js.Conn()
	if nc == nil {
		return nil, errors.New("producer: the publisher has no NATS connection")
	}
	// Acknowledgements resolve in the connection's goroutine through these
	// handlers: no goroutine waits on each publish. An ack that never comes
	// (the publish was lost with a broker that went away) fails after the
	// attempt timeout and is retried, with the same message id, like any
	// failure.
	async, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cap(p.window)+1),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) { p.acked(m) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { p.failed(m, err) }),
		jetstream.WithPublishAsyncTimeout(p.retry.AttemptTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	p.async = async
	// PublishBatch's context: the default handlers, the futures carry each
	// answer.
	if p.batch, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384),
		jetstream.WithPublishAsyncTimeout(p.retry.AttemptTimeout)); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return p, nil
}

// ConnectOptions are the NATS connection options recommended for a
// producer's connection: reconnect forever, quickly (every 250 ms, with
// jitter), and keep up to 32 MiB published while disconnected, so a broker
// restart costs callers the outage and little more. Append your own
// (credentials, TLS, name) after them.
func ConnectOptions() []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(32 << 20),
		nats.RetryOnFailedConnect(false),
	}
}

// Prepare fills what the producer owns (id, occurred_at, category), then
// validates and encodes the event. It returns the completed event and the
// message that would be published. Emit and EmitAsync call it; it is
// exported for callers that want to check an event without publishing.
func (p *Producer) Prepare(ev schemas.Event) (schemas.Event, *nats.Msg, error) {
	if ev.ID == "" {
		ev.ID = schemas.NewID()
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = p.now()
	}
	ev.OccurredAt = ev.OccurredAt.UTC().Truncate(time.Millisecond)
	if ev.Category == "" {
		if spec, ok := p.catalog.Lookup(ev.Action); ok {
			ev.Category = spec.Category
		}
	}
	if ev.Outcome == "" {
		ev.Outcome = schemas.OutcomeSuccess
	}
	if ev.Context.Source == "" {
		ev.Context.Source = p.source
	}
	ev.ReceivedAt = nil
	body, err := p.catalog.Encode(&ev)
	if err != nil {
		return ev, nil, &InvalidEventError{EventID: ev.ID, Action: ev.Action, Err: err}
	}
	msg := nats.NewMsg(schemas.Subject(ev.OrgID, ev.Action))
	msg.Header.Set(jetstream.MsgIDHeader, MsgID(ev.OrgID, ev.ID))
	msg.Data = body
	return ev, msg, nil
}

// MsgID is the Nats-Msg-Id an event is published with: "<org_id>/<id>".
// The stream deduplicates within its window by it, so per org, as the
// store's first write wins per org: an event is stored once however often
// it is sent, and an id another org's event already has does not make an
// event a duplicate.
func MsgID(orgID, id string) string { return orgID + "/" + id }

// eventID is the event id of a message Prepare returned.
func eventID(msg *nats.Msg) string {
	_, id, _ := strings.Cut(msg.Header.Get(jetstream.MsgIDHeader), "/")
	return id
}

// Emit validates ev and publishes it, returning once JetStream has stored
// it. An invalid event returns *InvalidEventError and nothing is
// published. Each attempt waits at most the retry policy's AttemptTimeout;
// failed and unanswered attempts are retried with backoff until ctx ends
// (or, when ctx has no deadline, for the policy's MaxElapsed), so a broker
// restart or a leader change shorter than the caller's deadline returns no
// error. Its Nats-Msg-Id is MsgID: an attempt the stream already stored
// is not stored twice.
func (p *Producer) Emit(ctx context.Context, ev schemas.Event) (Receipt, error) {
	if p.closed.Load() {
		return Receipt{}, ErrClosed
	}
	ev, msg, err := p.Prepare(ev)
	if err != nil {
		return Receipt{}, err
	}
	return p.publish(ctx, ev.ID, msg, 1)
}

// PublishBatch publishes messages Prepare returned, ids[i] being the id of
// the event of msgs[i], and returns once JetStream has answered for every
// one: its receipt (Receipt.Duplicate when the stream already held the id)
// or its error. Each is published with the Nats-Msg-Id Prepare set, all at once
// without waiting for acknowledgements in between; one whose first
// attempt fails is retried as Emit retries, with the same id, until ctx
// ends. It lets a caller validate a batch first and publish what is valid,
// as fast as EmitAsync and with a result per event. Safe for concurrent
// use.
func (p *Producer) PublishBatch(ctx context.Context, ids []string, msgs []*nats.Msg) ([]Receipt, []error) {
	out, errs := make([]Receipt, len(msgs)), make([]error, len(msgs))
	if p.closed.Load() {
		for i := range errs {
			errs[i] = ErrClosed
		}
		return out, errs
	}
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		if f, err := p.batch.PublishMsgAsync(m); err == nil {
			futs[i] = f
		}
	}
	var wg sync.WaitGroup
	for i, f := range futs {
		if f != nil {
			select {
			case ack := <-f.Ok():
				out[i] = Receipt{EventID: ids[i], Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate}
				continue
			case <-f.Err():
			case <-ctx.Done():
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = p.publish(ctx, ids[i], msgs[i], 2)
		}()
	}
	wg.Wait()
	return out, errs
}

// publish sends msg until JetStream acknowledges it, numbering attempts
// from first.
func (p *Producer) publish(ctx context.Context, id string, msg *nats.Msg, first int) (Receipt, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.retry.MaxElapsed)
		defer cancel()
	}
	delay := p.retry.Initial
	for attempt := first; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.attemptTimeout(attempt))
		ack, err := p.js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return Receipt{EventID: id, Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
		}
		if ctx.Err() != nil {
			return Receipt{}, &PublishError{EventID: id, Attempts: attempt, Err: errors.Join(err, ctx.Err())}
		}
		if !transient(err) {
			return Receipt{}, &PublishError{EventID: id, Attempts: attempt, Err: err}
		}
		wait := jitter(delay)
		if errors.Is(err, context.DeadlineExceeded) {
			// The attempt waited its whole timeout already: send again now.
			wait = 0
		}
		if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
			return Receipt{}, &PublishError{EventID: id, Attempts: attempt, Err: err}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return Receipt{}, &PublishError{EventID: id, Attempts: attempt, Err: errors.Join(err, ctx.Err())}
			case <-t.C:
			}
		}
		delay = min(time.Duration(float64(delay)*p.retry.Multiplier), p.retry.Max)
	}
}

// attemptTimeout is how long attempt n waits for its acknowledgement:
// AttemptTimeout, doubling with each attempt up to 8 times it, so that a
// broker too loaded to answer in time is not sent the same event ever more
// often.
func (p *Producer) attemptTimeout(n int) time.Duration {
	return p.retry.AttemptTimeout << min(n-1, 3)
}

// EmitAsync validates ev and starts publishing it, returning the event id
// without waiting for JetStream. It blocks while the in-flight window is
// full, until ctx ends. An invalid event returns *InvalidEventError at
// once. A publish that fails is retried like Emit's; an event that finally
// fails is reported to the async error handler and by the next Flush.
func (p *Producer) EmitAsync(ctx context.Context, ev schemas.Event) (string, error) {
	ev, msg, err := p.Prepare(ev)
	if err != nil {
		return "", err
	}
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed.Load() {
		return "", ErrClosed
	}
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("producer: waiting for the in-flight window: %w", ctx.Err())
	}
	p.inflight.Add(1)
	p.flightMu.Lock()
	p.flights[msg] = false
	p.flightMu.Unlock()
	if _, err := p.async.PublishMsgAsync(msg); err != nil {
		// Could not even start (or the error handler had the message
		// already): retry off the caller's path, once.
		p.failed(msg, err)
	}
	return ev.ID, nil
}

// acked completes an asynchronous publish that JetStream acknowledged,
// unless the message completed or started its retry already.
func (p *Producer) acked(msg *nats.Msg) {
	if p.claim(msg, false) {
		p.done()
	}
}

// failed starts the retry of a failed asynchronous publish, unless the
// message completed or started its retry already.
func (p *Producer) failed(msg *nats.Msg, err error) {
	if p.claim(msg, true) {
		go p.retryAsync(msg, err)
	}
}

// claim reports whether msg is in flight and its retry has not started:
// the first report of it. It then forgets msg (acknowledged) or marks its
// retry started.
func (p *Producer) claim(msg *nats.Msg, retry bool) bool {
	p.flightMu.Lock()
	defer p.flightMu.Unlock()
	if retrying, ok := p.flights[msg]; !ok || retrying {
		return false
	}
	if retry {
		p.flights[msg] = true
	} else {
		delete(p.flights, msg)
	}
	return true
}

// retryAsync retries a failed asynchronous publish synchronously, with
// the same message id, and records a final failure.
func (p *Producer) retryAsync(msg *nats.Msg, first error) {
	id := eventID(msg)
	var err error = &PublishError{EventID: id, Attempts: 1, Err: first}
	if transient(first) {
		// The asynchronous publish was the first attempt.
		_, err = p.publish(context.Background(), id, msg, 2)
	}
	if err != nil {
		p.errMu.Lock()
		p.errs = append(p.errs, err)
		p.errMu.Unlock()
		if p.onError != nil {
			ev, derr := schemas.Decode(msg.Data)
			if derr != nil {
				ev = schemas.Event{ID: id}
			}
			p.onError(ev, err)
		}
	}
	p.flightMu.Lock()
	delete(p.flights, msg)
	p.flightMu.Unlock()
	p.done()
}

func (p *Producer) done() {
	<-p.window
	p.inflight.Done()
}

// Flush waits until every event handed to EmitAsync so far is acknowledged
// or has finally failed, and returns the failures since the last Flush
// (errors.Join of *PublishError). It returns ctx's error if ctx ends first.
func (p *Producer) Flush(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("producer: flush: %d event(s) still in flight: %w", len(p.window), ctx.Err())
	}
	p.errMu.Lock()
	errs := p.errs
	p.errs = nil
	p.errMu.Unlock()
	return errors.Join(errs...)
}

// Close stops accepting events and flushes those in flight. It does not
// close the NATS connection, which belongs to the caller.
func (p *Producer) Close(ctx context.Context) error {
	p.closeMu.Lock()
	already := p.closed.Swap(true)
	p.closeMu.Unlock()
	if already {
		return nil
	}
	return p.Flush(ctx)
}

// transient reports whether a publish error may succeed if retried.
// Errors that cannot change by waiting — a closed connection, a message
// over the server's limit, a bad subject, a request the server rejects as
// malformed — are permanent.
func transient(err error) bool {
	switch {
	case errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrMaxPayload),
		errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrInvalidMsg),
		errors.Is(err, context.Canceled):
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 400 {
		return false
	}
	return true
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
