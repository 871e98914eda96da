package manage

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

func (h *Handler) test(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	sec, err := h.d.Store.Secrets(d)
	if err != nil {
		h.fail(w, err)
		return
	}
	start := time.Now()
	if err := forwarder.Test(r.Context(), d, sec, h.cfg.Build); err != nil {
		httpapi.Errorf(http.StatusBadGateway, auditapi.CodeDestinationFailed, "the destination did not accept the test event: %v", err).Write(w)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"delivered": true, "action": forwarder.TestAction,
		"latency_ms": time.Since(start).Milliseconds()})
}

// statusView is a destination's delivery status.
type statusView struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Lag is the number of the organization's events not yet delivered,
	// read from the destination's consumer now.
	Lag             uint64     `json:"lag"`
	LastEventTime   *time.Time `json:"last_event_time,omitempty"`
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
	Delivered       uint64     `json:"delivered"`
	LastError       string     `json:"last_error,omitempty"`
	LastErrorAt     *time.Time `json:"last_error_at,omitempty"`
	ReportedAt      *time.Time `json:"reported_at,omitempty"`
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	st, found, err := h.d.Store.GetStatus(r.Context(), c.org, d.ID)
	if err != nil {
		h.fail(w, err)
		return
	}
	v := statusView{ID: d.ID, State: "starting"}
	if found {
		v = statusView{ID: d.ID, State: st.State, Lag: st.Lag, LastEventTime: st.LastEventTime, LastDeliveredAt: st.LastDeliveredAt,
			Delivered: st.Delivered, LastError: st.LastError, LastErrorAt: st.LastErrorAt, ReportedAt: &st.UpdatedAt}
	}
	if d.Paused {
		v.State = "paused"
	}
	if lag, err := h.d.Store.Lag(r.Context(), d); err == nil {
		v.Lag = lag
	} else {
		h.d.Logger.Warn("reading a SIEM destination's lag", zap.String("org_id", c.org), zap.String("destination_id", d.ID), zap.Error(err))
	}
	httpapi.WriteJSON(w, http.StatusOK, v)
}

func (h *Handler) pause(paused bool) func(http.ResponseWriter, *http.Request, caller) {
	return func(w http.ResponseWriter, r *http.Request, c caller) {
		d, ok := h.lookup(w, r, c)
		if !ok {
			return
		}
		if d.Paused != paused {
			ev := producer.AuditSIEMDestinationUpdated(c.org, c.actor, target(d), d.Format)
			ev.Details["operation"] = map[bool]string{true: "pause", false: "resume"}[paused]
			ev.Details["paused"] = paused
			if !h.record.Apply(w, r, func(ctx context.Context) error {
				var err error
				d, err = h.d.Store.SetPaused(ctx, c.org, d.ID, paused)
				return err
			}, ev) {
				return
			}
		}
		httpapi.WriteJSON(w, http.StatusOK, toView(d))
	}
}

func (h *Handler) replay(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	var in struct {
		From *time.Time `json:"from"`
	}
	if e := httpapi.DecodeJSON(w, r, maxBody, &in); e != nil {
		e.Write(w)
		return
	}
	switch {
	case in.From == nil || in.From.IsZero():
		httpapi.BadField("from", "is required (RFC 3339)").Write(w)
		return
	case in.From.After(time.Now()):
		httpapi.BadField("from", "must not be in the future").Write(w)
		return
	}
	ev := producer.AuditSIEMDestinationUpdated(c.org, c.actor, target(d), d.Format)
	ev.Details["operation"] = "replay"
	ev.Details["from"] = in.From.UTC().Format(time.RFC3339Nano)
	var oldest time.Time
	if !h.record.Apply(w, r, func(ctx context.Context) error {
		var err error
		d, oldest, err = h.d.Store.Replay(ctx, c.org, d.ID, *in.From)
		return err
	}, ev) {
		return
	}
	out := map[string]any{"id": d.ID, "from": in.From.UTC()}
	note := "the stream holds no events; new events are delivered as they arrive"
	if !oldest.IsZero() {
		out["oldest_available"] = oldest.UTC()
		note = "the organization's events from " + in.From.UTC().Format(time.RFC3339) + " on are delivered again"
		if in.From.Before(oldest) {
			note = "the organization's events from " + oldest.UTC().Format(time.RFC3339) +
				", the oldest the stream still holds, are delivered again; events before it, if any, are no longer in the stream (export them from the store)"
		}
	}
	out["note"] = note
	httpapi.WriteJSON(w, http.StatusAccepted, out)
}
