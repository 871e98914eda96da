package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/schemas"
)

// Recorder is where a change made through an API meets its audit record,
// so that the rule "every change is recorded, or not made" lives here
// only. A route builds the audit events of its change from the validated
// request and calls Apply with them and the change: the events are
// written first (their free text made safe by schemas.CleanEvent), and
// the change is made only once every event is stored. If an event cannot
// be written the change is not made and the caller gets 503
// change-not-recorded. If the change then fails, a follow-up event with
// outcome failure and the reason is written for each event already
// stored, so the log never claims a change without saying it did not
// happen.
//
// The zero value is not usable; set Emit. Safe for concurrent use.
type Recorder struct {
	// Emit writes one audit event (a producer.Producer's Emit, receipt
	// dropped). It must refuse an event the catalog refuses.
	Emit func(ctx context.Context, ev schemas.Event) error
	// Fail answers a change's error; nil uses WriteError.
	Fail func(w http.ResponseWriter, err error)
	// Log receives failures; nil logs nothing.
	Log *zap.Logger
	// Timeout bounds each event's write and the change; default 10s. Both
	// go on if the client goes away.
	Timeout time.Duration
}

// ErrNotRecorded is returned by Write when an event could not be stored.
var ErrNotRecorded = errors.New("httpapi: the change's audit event could not be recorded")

// Write stores evs, cleaned, in order, before a change is made. It
// returns ErrNotRecorded (wrapping the cause) if one cannot be stored;
// follow-ups for those already stored are then written as by Undo. Most
// routes use Apply; Write and Undo serve changes that do not fit one
// function, such as a streamed export.
func (rc Recorder) Write(ctx context.Context, evs ...schemas.Event) ([]schemas.Event, error) {
	written := make([]schemas.Event, 0, len(evs))
	for _, ev := range evs {
		ev = schemas.CleanEvent(ev)
		if ev.ID == "" {
			ev.ID = schemas.NewID()
		}
		if err := rc.Emit(ctx, ev); err != nil {
			rc.logError("an audit event could not be recorded; the change is not made", ev, err)
			rc.Undo(ctx, written, "not applied: its audit record could not be completed")
			return nil, errors.Join(ErrNotRecorded, err)
		}
		written = append(written, ev)
	}
	return written, nil
}

// Undo writes, for each event of written, a follow-up with the same
// action, actor and targets, outcome failure and reason, saying that the
// recorded change did not happen or did not complete. It is best effort:
// a follow-up that cannot be written is logged.
func (rc Recorder) Undo(ctx context.Context, written []schemas.Event, reason string) {
	for _, ev := range written {
		f := ev
		f.ID, f.OccurredAt, f.ReceivedAt = schemas.NewID(), time.Time{}, nil
		f.Outcome, f.Reason = schemas.OutcomeFailure, reason
		f = schemas.CleanEvent(f)
		if err := rc.Emit(ctx, f); err != nil {
			rc.logError("a recorded change failed and its follow-up record could not be written", f, err)
		}
	}
}

// Apply records evs, then makes the change with apply. It returns true
// when both are done; otherwise it has answered on w and the handler must
// stop: 503 change-not-recorded when the events could not be stored (the
// change is not made), or Fail's answer to apply's error (after the
// follow-up records). apply runs with a context that outlives the client,
// so a recorded change is not cut off half-way.
func (rc Recorder) Apply(w http.ResponseWriter, r *http.Request, apply func(ctx context.Context) error, evs ...schemas.Event) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), rc.timeout())
	defer cancel()
	written, err := rc.Write(ctx, evs...)
	if err != nil {
		NotRecorded().Write(w)
		return false
	}
	if err := apply(ctx); err != nil {
		rc.Undo(ctx, written, "not applied: "+err.Error())
		if rc.Fail != nil {
			rc.Fail(w, err)
		} else {
			WriteError(w, rc.Log, err)
		}
		return false
	}
	return true
}

// NotRecorded is the 503 change-not-recorded answer: the change was not
// made because its audit event could not be stored.
func NotRecorded() *Error {
	return Errorf(http.StatusServiceUnavailable, auditapi.CodeNotRecorded,
		"the change was not made: its audit event could not be recorded; try again later")
}

// Actor completes actor with the request's client address and User-Agent
// header, as sent (Write cleans them).
func Actor(r *http.Request, actor schemas.Actor) schemas.Actor {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			actor.IP = ip.String()
		}
	}
	actor.UserAgent = r.UserAgent()
	return actor
}

func (rc Recorder) timeout() time.Duration {
	if rc.Timeout <= 0 {
		return 10 * time.Second
	}
	return rc.Timeout
}

func (rc Recorder) logError(msg string, ev schemas.Event, err error) {
	if rc.Log != nil {
		rc.Log.Error(msg, zap.String("action", ev.Action), zap.String("org_id", ev.OrgID), zap.Error(err))
	}
}
