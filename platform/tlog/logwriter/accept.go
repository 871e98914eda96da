package logwriter

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/schemas"
)

// Accept returns the AcceptFunc that takes the ingestor's decisions: the
// message decodes, validates against catalog (when not nil) and arrived on
// its org's and action's subject. ReceivedAt is the message's stored time
// in the stream, truncated to the millisecond, as the ingestor stores it.
func Accept(catalog *schemas.Catalog) AcceptFunc {
	return func(msg jetstream.Msg) (schemas.Event, bool) {
		md, err := msg.Metadata()
		if err != nil {
			return schemas.Event{}, false
		}
		ev, err := schemas.Decode(msg.Data())
		if err != nil {
			return schemas.Event{}, false
		}
		if catalog != nil {
			if err := catalog.Validate(&ev); err != nil {
				return schemas.Event{}, false
			}
		}
		if !subjectIs(msg.Subject(), ev.OrgID, ev.Action) {
			return schemas.Event{}, false
		}
		received := md.Timestamp.UTC().Truncate(time.Millisecond)
		ev.ReceivedAt = &received
		return ev, true
	}
}

// subjectIs reports whether subject is schemas.Subject(org, action)
// without building it.
func subjectIs(subject, org, action string) bool {
	rest, ok := strings.CutPrefix(subject, schemas.SubjectPrefix+".")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, org)
	return ok && len(rest) == len(action)+1 && rest[0] == '.' && rest[1:] == action
}
