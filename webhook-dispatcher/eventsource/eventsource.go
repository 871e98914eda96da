// Package eventsource reads past events for webhook replays from the
// ClickHouse event store. Replays read the store, not the streams: they
// keep a bounded window of events, while the store keeps each event for
// the organization's retention.
package eventsource

import (
	"context"
	"time"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/schemas"
)

// Store is the part of eventstore.Store a Source needs.
type Store interface {
	Stream(ctx context.Context, orgID string, f eventstore.Filter, fn func(schemas.Event) error) error
}

var _ Store = (*eventstore.Store)(nil)

// Source adapts an event store to manage.EventSource. Safe for concurrent
// use as far as the store is.
type Source struct{ store Store }

// New returns a Source reading store.
func New(store Store) *Source { return &Source{store: store} }

// Between calls fn with every live event of the org with since <=
// occurred_at < until, newest first, each once, and stops at fn's first
// error. Events ingested while it runs are left out (a snapshot).
func (s *Source) Between(ctx context.Context, org string, since, until time.Time, fn func(schemas.Event) error) error {
	return s.store.Stream(ctx, org, eventstore.Filter{Since: since, Until: until, ReceivedBy: time.Now()}, fn)
}
