package dispatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
	"github.com/takumo/audit/webhook-dispatcher/netguard"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// Plans tells which plan an organization is on (orgsettings.Store).
type Plans interface {
	Get(orgID string) orgsettings.Settings
}

// Emitter records audit events (producer.Producer).
type Emitter interface {
	Emit(ctx context.Context, ev schemas.Event) (producer.Receipt, error)
}

var (
	_ Plans   = (*orgsettings.Store)(nil)
	_ Emitter = (*producer.Producer)(nil)
)

// Actor is who the dispatcher's own audit events name.
var Actor = producer.System("webhook-dispatcher")

// Dispatcher fans events out to endpoints and delivers them. New starts
// nothing: SendTest, Replay and the attempt log work without Run, so a
// management process can use a Dispatcher that never runs. Run consumes
// and delivers until its context ends; call it once. All methods are safe
// for concurrent use.
type Dispatcher struct {
	cfg    Config
	js     jetstream.JetStream
	reg    *endpoints.Registry
	plans  Plans
	emit   Emitter
	client *http.Client
	log    *zap.Logger
	m      *metrics
	sem    chan struct{}
	now    func() time.Time

	mu    sync.Mutex
	lanes map[string]*lane
}

// Option configures a Dispatcher.
type Option func(*Dispatcher)

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(d *Dispatcher) { d.log = l } }

// WithRegisterer registers the dispatcher's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(d *Dispatcher) { d.m = newMetrics(r) }
}

// WithHTTPClient replaces the client built from the guard. It must come
// from netguard.Guard.NewClient (tests use it to set a resolver).
func WithHTTPClient(c *http.Client) Option { return func(d *Dispatcher) { d.client = c } }

// New returns a dispatcher. emit may be nil (no audit events recorded).
func New(cfg Config, js jetstream.JetStream, reg *endpoints.Registry, plans Plans, emit Emitter, guard *netguard.Guard, opts ...Option) (*Dispatcher, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	if js == nil || reg == nil || plans == nil || guard == nil {
		return nil, errors.New("dispatcher: jetstream, registry, plans and guard are required")
	}
	d := &Dispatcher{cfg: cfg, js: js, reg: reg, plans: plans, emit: emit, now: time.Now,
		sem: make(chan struct{}, cfg.MaxConcurrency), lanes: map[string]*lane{}}
	for _, o := range opts {
		o(d)
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	if d.m == nil {
		d.m = newMetrics(nil)
	}
	if d.client == nil {
		d.client = guard.NewClient(netguard.ClientConfig{Timeout: cfg.RequestTimeout, MaxConnsPerHost: 2 * cfg.EndpointConcurrency})
	}
	return d, nil
}

// Run fans out and delivers until ctx ends, then stops taking messages,
// lets requests in flight finish (within ShutdownTimeout), acknowledges
// them and returns. Messages taken but not started go back to the stream
// at once. It returns nil after a clean stop.
func (d *Dispatcher) Run(ctx context.Context) error {
	cons, err := d.js.Consumer(ctx, topology.FanoutStream, FanoutConsumer)
	if err != nil {
		return fmt.Errorf("dispatcher: consumer %s (run EnsureTopology first): %w", FanoutConsumer, err)
	}
	changes := d.reg.Changes()
	laneCtx, stopLanes := context.WithCancel(context.Background())
	defer stopLanes()
	d.reconcile(laneCtx)

	fanCtx, stopFan := context.WithCancel(context.Background())
	defer stopFan()
	fanDone := make(chan error, 1)
	go func() { fanDone <- d.fanout(fanCtx, cons) }()
	d.log.Info("webhook dispatcher started")

	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-changes:
			d.reconcile(laneCtx)
		case <-tick.C:
			d.reconcile(laneCtx)
		case err := <-fanDone:
			runErr, fanDone = err, nil
			break loop
		}
	}
	stopFan()
	if fanDone != nil {
		if err := <-fanDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	stopLanes()
	d.mu.Lock()
	lanes := d.lanes
	d.lanes = map[string]*lane{}
	d.mu.Unlock()
	for _, l := range lanes {
		<-l.done
	}
	d.log.Info("webhook dispatcher stopped")
	return runErr
}

// fanout turns events into delivery messages.
func (d *Dispatcher) fanout(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("dispatcher: subscribe: %w", err)
	}
	go func() { <-ctx.Done(); it.Drain() }()
	type fanned struct {
		msg  jetstream.Msg
		futs []jetstream.PubAckFuture
	}
	acks := make(chan fanned, 4096)
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for f := range acks {
			ok := true
			for _, fut := range f.futs {
				select {
				case <-fut.Ok():
				case err := <-fut.Err():
					ok = false
					d.log.Warn("storing a delivery message failed; the event will be retried", zap.Error(err))
				}
			}
			if ok {
				_ = f.msg.Ack()
			} else {
				d.m.fanoutFailure.Inc()
				_ = f.msg.NakWithDelay(time.Second)
			}
		}
	}()
	defer func() { close(acks); <-ackDone }()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) {
				return fmt.Errorf("dispatcher: consumer %s deleted", FanoutConsumer)
			}
			d.log.Debug("fetching events", zap.Error(err))
			continue
		}
		if ctx.Err() != nil {
			_ = msg.Nak()
			continue
		}
		futs, err := d.fan(msg)
		if err != nil {
			d.m.fanoutFailure.Inc()
			d.log.Warn("fan-out failed; the event will be retried", zap.Error(err))
			_ = msg.NakWithDelay(time.Second)
			continue
		}
		acks <- fanned{msg: msg, futs: futs}
	}
}

// fan publishes the delivery messages of one event.
func (d *Dispatcher) fan(msg jetstream.Msg) ([]jetstream.PubAckFuture, error) {
	ev, err := schemas.Decode(msg.Data())
	if err != nil {
		// The ingestor dead-letters undecodable messages; nothing to send.
		d.m.fanoutEvents.WithLabelValues("undecodable").Inc()
		return nil, nil
	}
	if !d.plans.Get(ev.OrgID).Plan.HasEnterpriseFeatures() {
		d.m.fanoutEvents.WithLabelValues("not_entitled").Inc()
		return nil, nil
	}
	eps := d.reg.Matching(ev.OrgID, ev.Action)
	if len(eps) == 0 {
		d.m.fanoutEvents.WithLabelValues("unmatched").Inc()
		return nil, nil
	}
	d.m.fanoutEvents.WithLabelValues("matched").Inc()
	received := time.Now()
	if md, err := msg.Metadata(); err == nil {
		received = md.Timestamp
	}
	r := received.UTC().Truncate(time.Millisecond)
	ev.ReceivedAt = &r
	body, err := EncodeBody(ev)
	if err != nil {
		d.m.fanoutEvents.WithLabelValues("undecodable").Inc()
		return nil, nil
	}
	futs := make([]jetstream.PubAckFuture, 0, len(eps))
	for _, ep := range eps {
		m := deliveryMsg(ep, ev.ID, ev.ID+"."+ep.ID, KindEvent, received, body)
		fut, err := d.js.PublishMsgAsync(m)
		if err != nil {
			return nil, err
		}
		futs = append(futs, fut)
	}
	d.m.fanoutQueued.Add(float64(len(futs)))
	return futs, nil
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

func (d *Dispatcher) runLane(ctx context.Context, l *lane, cons jetstream.Consumer) {
	defer close(l.done)
	it, err := cons.Messages(jetstream.PullMaxMessages(d.cfg.EndpointConcurrency))
	if err != nil {
		d.log.Warn("endpoint lane subscribe", zap.String("endpoint_id", l.id), zap.Error(err))
		return
	}
	go func() { <-ctx.Done(); it.Drain() }()
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range d.cfg.EndpointConcurrency {
		wg.Go(func() {
			for m := range msgs {
				d.deliver(l.org, l.id, m)
			}
		})
	}
	defer func() { close(msgs); wg.Wait() }()
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if ctx.Err() != nil {
			_ = m.Nak() // taken but not started: back to the stream at once
			continue
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			_ = m.Nak()
		}
	}
}

// result is the outcome of one request.
type result struct {
	status     int
	latency    time.Duration
	response   string
	err        error
	retryAfter time.Duration
	abort      bool
}

func (r result) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

// deliver makes one attempt of one delivery message and settles it.
func (d *Dispatcher) deliver(org, id string, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	attempt := int(md.NumDelivered)
	webhookID := m.Headers().Get(hdrEventID)
	kind := m.Headers().Get(hdrKind)
	ep, ok := d.reg.Get(org, id)
	if !ok {
		_ = m.Term() // endpoint deleted
		return
	}
	rec := Attempt{EndpointID: id, MessageID: webhookID, Kind: kind, Attempt: attempt}
	if !ep.Enabled || !d.plans.Get(org).Plan.HasEnterpriseFeatures() {
		rec.Time = d.now().UTC()
		rec.Outcome = OutcomeSkipped
		if !ep.Enabled {
			rec.Error = "endpoint disabled: " + ep.DisabledReason
		} else {
			rec.Error = "the organization's plan does not include webhooks"
		}
		d.finish(org, rec, "skipped")
		_ = m.Term()
		return
	}
	// Requests in flight finish even while stopping, within the request
	// timeout, so a receiver's 2xx is acknowledged rather than repeated.
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.RequestTimeout+5*time.Second)
	defer cancel()
	d.sem <- struct{}{}
	d.m.inflight.Inc()
	res := d.send(ctx, ep, webhookID, m.Data())
	d.m.inflight.Dec()
	<-d.sem
	rec.Time = d.now().UTC()
	rec.StatusCode, rec.LatencyMS, rec.Response = res.status, float64(res.latency.Microseconds())/1000, res.response
	if res.err != nil {
		rec.Error = res.err.Error()
	}
	d.m.attemptDur.Observe(res.latency.Seconds())
	log := d.log.With(zap.String("org_id", org), zap.String("endpoint_id", id), zap.String("webhook_id", webhookID), zap.Int("attempt", attempt))

	switch {
	case res.ok():
		if err := m.DoubleAck(ctx); err != nil {
			log.Warn("acknowledging a delivered message failed; it may be delivered again", zap.Error(err))
		}
		rec.Outcome = OutcomeSuccess
		d.finish(org, rec, "delivered")
		if ns, err := strconv.ParseInt(m.Headers().Get(hdrEventTime), 10, 64); err == nil && kind == KindEvent {
			d.m.latency.Observe(time.Since(time.Unix(0, ns)).Seconds())
		}
		if _, err := d.reg.NoteResult(ctx, org, id, true); err != nil && !errors.Is(err, endpoints.ErrNotFound) {
			log.Warn("recording endpoint success", zap.Error(err))
		}
		return
	case res.err == nil && res.status == http.StatusGone:
		d.disable(ctx, ep, "gone", "receiver answered 410 Gone")
		rec.Outcome = OutcomeDisabled
		d.finish(org, rec, "failed")
		_ = m.Term()
		return
	case res.abort:
		rec.Outcome = OutcomeFailed
		rec.Error = "receiver asked to stop retrying (webhook-delivery: abort-message)"
		d.finish(org, rec, "failed")
		_ = m.Term()
		return
	}
	since, err := d.reg.NoteResult(ctx, org, id, false)
	if err != nil && !errors.Is(err, endpoints.ErrNotFound) {
		log.Warn("recording endpoint failure", zap.Error(err))
	}
	if !since.IsZero() && d.now().Sub(since) >= d.cfg.DisableAfter {
		d.disable(ctx, ep, "failing", fmt.Sprintf("every delivery attempt failed for %s", d.cfg.DisableAfter))
		rec.Outcome = OutcomeDisabled
		d.finish(org, rec, "failed")
		_ = m.Term()
		return
	}
	if attempt > len(d.cfg.Schedule) {
		rec.Outcome = OutcomeFailed
		d.finish(org, rec, "failed")
		log.Info("webhook delivery failed after the last attempt", zap.Int("status", res.status))
		_ = m.Term()
		return
	}
	delay := d.jitter(d.cfg.Schedule[attempt-1])
	if (res.status == http.StatusTooManyRequests || res.status == http.StatusServiceUnavailable) && res.retryAfter > 0 {
		delay = min(res.retryAfter, d.cfg.MaxRetryAfter)
	}
	next := rec.Time.Add(delay)
	rec.Outcome, rec.NextRetry = OutcomeRetry, &next
	d.finish(org, rec, "")
	if err := m.NakWithDelay(delay); err != nil {
		log.Warn("scheduling a retry failed; the server redelivers after the ack wait", zap.Error(err))
	}
}

func (d *Dispatcher) jitter(base time.Duration) time.Duration {
	if d.cfg.Jitter <= 0 || base <= 0 {
		return base
	}
	f := 1 + d.cfg.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(base) * f)
}

// finish logs the attempt and counts it; result is the delivery's final
// result, or "" when it goes on.
func (d *Dispatcher) finish(org string, rec Attempt, result string) {
	d.m.attempts.WithLabelValues(rec.Outcome).Inc()
	if result != "" {
		d.m.deliveries.WithLabelValues(result).Inc()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	if _, err := d.js.PublishAsync(attemptSubject(org, rec.EndpointID), b); err != nil {
		d.m.logDropped.Inc()
	}
}

// disable turns the endpoint off and records audit.webhook_disabled, once
// over all instances.
func (d *Dispatcher) disable(ctx context.Context, ep endpoints.Endpoint, class, reason string) {
	_, err := d.reg.Disable(ctx, ep.OrgID, ep.ID, reason)
	if errors.Is(err, endpoints.ErrAlreadyDisabled) || errors.Is(err, endpoints.ErrNotFound) {
		return
	}
	log := d.log.With(zap.String("org_id", ep.OrgID), zap.String("endpoint_id", ep.ID), zap.String("reason", reason))
	if err != nil {
		log.Error("disabling an endpoint failed", zap.Error(err))
		return
	}
	d.m.disabled.WithLabelValues(class).Inc()
	log.Warn("webhook endpoint disabled")
	if d.emit == nil {
		return
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := d.emit.Emit(ectx, producer.AuditWebhookDisabled(ep.OrgID, Actor, producer.Webhook(ep.ID, ""), reason)); err != nil {
		log.Error("recording audit.webhook_disabled failed", zap.Error(err))
	}
}

// send makes one signed request.
func (d *Dispatcher) send(ctx context.Context, ep endpoints.Endpoint, webhookID string, body []byte) result {
	now := d.now()
	keys := d.reg.SigningKeys(ep.OrgID, ep.ID, now)
	if len(keys) == 0 {
		return result{err: errors.New("no usable signing secret (is the secret key configured?)")}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return result{err: errors.New("invalid endpoint URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	if err := signing.SetHeaders(req.Header, webhookID, now, body, keys...); err != nil {
		return result{err: err}
	}
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		// The URL error repeats the URL, which may carry a token in its
		// query: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return result{latency: time.Since(start), err: err}
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, int64(d.cfg.ResponseLimit)))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	r := result{status: resp.StatusCode, latency: time.Since(start), response: string(bytes.ToValidUTF8(head, []byte("?")))}
	r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	r.abort = resp.Header.Get("webhook-delivery") == "abort-message"
	return r
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
