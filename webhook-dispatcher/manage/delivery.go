package manage

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
)

func (h *Handler) test(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	at, err := h.d.Dispatcher.SendTest(r.Context(), ep)
	if err != nil {
		h.fail(w, err)
		return
	}
	if reason := testFailure(at); reason != "" {
		// The attempt is in the attempt log; the answer says it failed, as
		// the SIEM test does.
		httpapi.Errorf(http.StatusBadGateway, auditapi.CodeDestinationFailed, "the endpoint did not accept the test request: %s", reason).Write(w)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, at)
}

// testFailure says why a test attempt failed, or "" when the receiver
// answered 2xx.
func testFailure(at dispatcher.Attempt) string {
	switch {
	case at.Error != "":
		return at.Error
	case at.StatusCode < 200 || at.StatusCode > 299:
		reason := fmt.Sprintf("it answered HTTP %d", at.StatusCode)
		if r := strings.TrimSpace(at.Response); r != "" {
			if len(r) > 200 {
				r = r[:200] + "…"
			}
			reason += ": " + r
		}
		return reason
	}
	return ""
}

func (h *Handler) deliveries(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > dispatcher.MaxAttemptsRead {
			httpapi.BadParam("limit", fmt.Sprintf("must be between 1 and %d", dispatcher.MaxAttemptsRead)).Write(w)
			return
		}
		limit = n
	}
	at, err := h.d.Attempts.Recent(r.Context(), c.org, ep.ID, limit)
	if err != nil {
		h.fail(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"attempts": at})
}

func (h *Handler) recover(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	if h.d.Events == nil {
		httpapi.Errorf(http.StatusNotImplemented, auditapi.CodeNotImplemented, "replays need the event store, which this process is not configured with").Write(w)
		return
	}
	var in struct {
		Since time.Time  `json:"since"`
		Until *time.Time `json:"until"`
	}
	if e := httpapi.DecodeJSON(w, r, maxBody, &in); e != nil {
		e.Write(w)
		return
	}
	until := time.Now()
	if in.Until != nil {
		until = *in.Until
	}
	switch {
	case in.Since.IsZero():
		httpapi.BadField("since", "is required (RFC 3339)").Write(w)
		return
	case !in.Since.Before(until):
		httpapi.BadField("until", "must be after since").Write(w)
		return
	case until.Sub(in.Since) > h.cfg.MaxRecoverWindow:
		httpapi.BadField("since", fmt.Sprintf("since..until may span at most %s", h.cfg.MaxRecoverWindow)).Write(w)
		return
	}
	batch := schemas.NewID()
	// A replay sends the organization's events again: it is recorded
	// first, as a configuration change of the endpoint told apart by
	// details.operation.
	ev := producer.AuditWebhookUpdated(c.org, c.actor, producer.Webhook(ep.ID, ""), auditURL(ep.URL), ep.Filters)
	ev.Details["operation"] = "recover"
	ev.Details["replay_id"] = batch
	ev.Details["since"] = in.Since.UTC().Format(time.RFC3339Nano)
	ev.Details["until"] = until.UTC().Format(time.RFC3339Nano)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	written, err := h.record.Write(rctx, ev)
	cancel()
	if err != nil {
		httpapi.NotRecorded().Write(w)
		return
	}
	n, err := h.d.Dispatcher.Replay(r.Context(), ep, batch, func(yield func(schemas.Event) error) error {
		return h.d.Events.Between(r.Context(), c.org, in.Since, until, yield)
	})
	if err != nil {
		h.d.Logger.Error("replay stopped", zap.String("org_id", c.org), zap.String("endpoint_id", ep.ID), zap.Int("queued", n), zap.Error(err))
		uctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		h.record.Undo(uctx, written, fmt.Sprintf("the replay stopped after queueing %d deliveries: %v", n, err))
		cancel()
		httpapi.Errorf(http.StatusInternalServerError, auditapi.CodeInternal, "the replay stopped after queueing %d deliveries; run it again to finish (receivers deduplicate on webhook-id)", n).Write(w)
		return
	}
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]any{"replay_id": batch, "queued": n, "since": in.Since, "until": until})
}
