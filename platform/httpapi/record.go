package httpapi

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/schemas"
)

// Recorder is where a change made through an API meets its audit record:
// every management route records its change with Record, so the rule "a
// change is recorded or the caller is told" lives here only. Today the
// change is applied first and recorded after; a failure to record answers
// 503 change-not-recorded, and repeating the request records it.
//
// The zero value is not usable; set Emit. Safe for concurrent use.
type Recorder struct {
	// Emit writes one audit event (a producer.Producer's Emit, receipt
	// dropped).
	Emit func(ctx context.Context, ev schemas.Event) error
	// Log receives failures; nil logs nothing.
	Log *zap.Logger
	// Timeout bounds each event's write; default 10s. The write goes on if
	// the client goes away: the change is already made.
	Timeout time.Duration
}

// Record writes evs, the audit events of a change just made, in order. If
// one cannot be written it answers 503 change-not-recorded on w and
// returns false; the handler must then stop.
func (rc Recorder) Record(w http.ResponseWriter, r *http.Request, evs ...schemas.Event) bool {
	timeout := rc.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), timeout)
	defer cancel()
	for _, ev := range evs {
		if err := rc.Emit(ctx, ev); err != nil {
			if rc.Log != nil {
				rc.Log.Error("a change was applied but its audit event was not recorded",
					zap.String("action", ev.Action), zap.String("org_id", ev.OrgID), zap.Error(err))
			}
			Errorf(http.StatusServiceUnavailable, auditapi.CodeNotRecorded,
				"the change was applied but its audit event could not be recorded; repeat the request to record it").Write(w)
			return false
		}
	}
	return true
}
