package topology

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// deletedAdvisory is the subject prefix of the server's announcement that
// a stream was deleted; the stream's name follows.
const deletedAdvisory = "$JS.EVENT.ADVISORY.STREAM.DELETED."

// Deletions records the stream deletions the NATS server announces. The
// server announces one once the stream's consumers are gone, just before
// it removes the stream's files, and after the stream's readers noticed
// their consumers gone: the owner's repair waits for it before creating
// the stream again (Verifier.Deletions). Safe for concurrent use.
type Deletions struct {
	sub *nats.Subscription

	mu      sync.Mutex
	seen    map[string]time.Time
	changed chan struct{} // closed and replaced at each announcement
}

// WatchDeletions subscribes nc to the stream deletions the server
// announces in its account. Close ends it.
func WatchDeletions(nc *nats.Conn) (*Deletions, error) {
	d := &Deletions{seen: map[string]time.Time{}, changed: make(chan struct{})}
	sub, err := nc.Subscribe(deletedAdvisory+"*", func(m *nats.Msg) {
		d.record(strings.TrimPrefix(m.Subject, deletedAdvisory), time.Now())
	})
	if err != nil {
		return nil, err
	}
	d.sub = sub
	return d, nil
}

// Close ends the subscription.
func (d *Deletions) Close() error {
	if d == nil || d.sub == nil {
		return nil
	}
	return d.sub.Unsubscribe()
}

func (d *Deletions) record(stream string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen[stream] = at
	close(d.changed)
	d.changed = make(chan struct{})
}

// Await returns when the server announced the deletion of stream, the
// first announcement later than after (the last time the stream was seen
// to exist; zero: any), waiting up to max for it. It returns the zero time
// when none came: the stream was deleted before this process watched, or
// the announcement was lost.
func (d *Deletions) Await(ctx context.Context, stream string, after time.Time, max time.Duration) (time.Time, error) {
	t := time.NewTimer(max)
	defer t.Stop()
	for {
		d.mu.Lock()
		at, ok := d.seen[stream]
		changed := d.changed
		d.mu.Unlock()
		if ok && at.After(after) {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-t.C:
			return time.Time{}, nil
		case <-changed:
		}
	}
}
