package destinations

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Status is a destination's delivery status, written by the forwarder
// instance delivering it. LastError is a short reason
// (netguard.Reason): never what the receiver sent nor an address a name
// resolved to.
type Status struct {
	OrgID         string `json:"org_id"`
	DestinationID string `json:"destination_id"`
	// State is "active", "failing", "paused" or "starting".
	State string `json:"state"`
	// LastEventTime is occurred_at of the last delivered event;
	// LastDeliveredAt when that batch was accepted.
	LastEventTime   *time.Time `json:"last_event_time,omitempty"`
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
	// Lag is the number of the org's events not yet delivered.
	Lag uint64 `json:"lag"`
	// Delivered counts events delivered by the reporting instance since it
	// started.
	Delivered   uint64     `json:"delivered"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Instance    string     `json:"instance,omitempty"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

// PutStatus records a destination's status.
func (s *Store) PutStatus(ctx context.Context, st Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.status.Put(ctx, Key(st.OrgID, st.DestinationID), b)
	return err
}

// GetStatus reads a destination's last recorded status; ok is false when
// none was recorded yet.
func (s *Store) GetStatus(ctx context.Context, orgID, id string) (Status, bool, error) {
	e, err := s.status.Get(ctx, Key(orgID, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Status{}, false, nil
	}
	if err != nil {
		return Status{}, false, err
	}
	var st Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return Status{}, false, err
	}
	return st, true, nil
}
