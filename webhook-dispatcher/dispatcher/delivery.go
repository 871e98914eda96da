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
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

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

// deliver makes one attempt of one delivery message and settles it or
// schedules its retry. The attempt number is the delivery's position in
// the schedule, kept in RetriesBucket between attempts.
func (d *Dispatcher) deliver(lane context.Context, org, id string, m jetstream.Msg) {
	settled := true
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	webhookID := m.Headers().Get(hdrEventID)
	kind := m.Headers().Get(hdrKind)
	if webhookID == "" {
		// Not a delivery the dispatcher enqueued (each carries its
		// webhook id): such as a JetStream answer a client had the
		// server store on a delivery subject by naming it as a
		// request's reply subject. Never sent.
		d.log.Warn("terminating a delivery message with no webhook id", zap.String("org_id", org), zap.String("endpoint_id", id), zap.Uint64("stream_seq", md.Sequence.Stream))
		_ = m.Term()
		return
	}
	ep, ok := d.reg.Get(org, id)
	if !ok {
		_ = m.Term() // endpoint deleted
		return
	}
	key := retryKey(org, id, md.Sequence.Stream)
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	attempt := d.retries.attempt(actx, key, webhookID, md.NumDelivered)
	acancel()
	defer func() {
		if settled {
			d.retries.settled(key, attempt)
		}
	}()
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
	select {
	case d.sem <- struct{}{}:
	case <-lane.Done():
		// Stopping before a request slot was free: not attempted, back to
		// the stream at once, its schedule position unchanged.
		settled = false
		_ = m.Nak()
		return
	}
	// Restart the ack wait, which ran while the message waited in the
	// lane's prefetch and for a request slot: the server does not hand it
	// out again while its request runs (AckWait > RequestTimeout).
	_ = m.InProgress()
	if attempt > 1 {
		// A retry is recorded before it is sent, so a process that dies
		// during its request does not repeat its step.
		d.retries.record(ctx, key, webhookID, attempt)
	}
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
	settled = false
	if attempt == 1 {
		d.retries.record(ctx, key, webhookID, attempt)
	}
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
		// The cause is told in a few words, never with an address a name
		// resolved to (netguard.Reason).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return result{latency: time.Since(start), err: netguard.Sanitize(err)}
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
