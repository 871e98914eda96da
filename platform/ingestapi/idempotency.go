package ingestapi

import (
	"container/list"
	"net/http"
	"sync"
	"time"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
)

// idempotency keeps the answers of ingest requests for retries, per scope
// (the writer and its Idempotency-Key, or the body when every event has
// its id): a retry, or a copy sent at the same time, waits for the first
// request and gets its answer byte for byte. Answers are kept for the
// stream's duplicate window, within a memory budget (oldest first out).
// The memory is the process's: a retry reaching another process is
// answered from the stream's deduplication instead (each event stored
// once, "duplicate" in place of "accepted").
type idempotency struct {
	maxBytes int
	ttl      time.Duration

	mu      sync.Mutex
	entries map[string]*idemEntry
	order   *list.List // of *idemEntry, oldest first
	bytes   int
}

type idemEntry struct {
	scope   string
	bodySum string
	done    chan struct{}
	an      *answer
	at      time.Time
	el      *list.Element
}

func newIdempotency(maxBytes int, ttl time.Duration) *idempotency {
	return &idempotency{maxBytes: maxBytes, ttl: ttl, entries: map[string]*idemEntry{}, order: list.New()}
}

// do returns the answer kept for scope, waiting for it if the first
// request is still running, or runs fn and keeps its answer when fn says
// so. The same Idempotency-Key with another body is a 409.
func (c *idempotency) do(scope, bodySum string, fn func() (*answer, bool)) (*answer, *httpapi.Error) {
	now := time.Now()
	c.mu.Lock()
	c.expire(now)
	if e, ok := c.entries[scope]; ok {
		c.mu.Unlock()
		if e.bodySum != bodySum {
			return nil, httpapi.Errorf(http.StatusConflict, auditapi.CodeConflict,
				"this Idempotency-Key was used with another body; use a new key for new events")
		}
		<-e.done
		if e.an != nil {
			return e.an, nil
		}
		// The first request failed and was not kept: run again.
		return c.do(scope, bodySum, fn)
	}
	e := &idemEntry{scope: scope, bodySum: bodySum, done: make(chan struct{}), at: now}
	c.entries[scope] = e
	c.mu.Unlock()

	an, keep := fn()
	c.mu.Lock()
	if keep {
		e.an = an
		e.el = c.order.PushBack(e)
		c.bytes += len(an.body) + len(scope)
		for c.bytes > c.maxBytes && c.order.Len() > 1 {
			c.drop(c.order.Front().Value.(*idemEntry))
		}
	} else {
		delete(c.entries, scope)
	}
	c.mu.Unlock()
	close(e.done)
	return an, nil
}

func (c *idempotency) expire(now time.Time) {
	for c.order.Len() > 0 {
		e := c.order.Front().Value.(*idemEntry)
		if now.Sub(e.at) < c.ttl {
			return
		}
		c.drop(e)
	}
}

func (c *idempotency) drop(e *idemEntry) {
	c.order.Remove(e.el)
	delete(c.entries, e.scope)
	c.bytes -= len(e.an.body) + len(e.scope)
}

// recentIDs remembers the content hash of the events this process stored
// recently (at most max, for the duplicate window), so that a repeated id
// is told apart from a conflicting one without a store lookup.
type recentIDs struct {
	max int
	ttl time.Duration

	mu    sync.Mutex
	m     map[string]recentID
	order *list.List // of string keys, oldest first
}

type recentID struct {
	hash       [32]byte
	occurredAt time.Time
	at         time.Time
}

func newRecentIDs(max int, ttl time.Duration) *recentIDs {
	return &recentIDs{max: max, ttl: ttl, m: map[string]recentID{}, order: list.New()}
}

func (r *recentIDs) add(org, id string, hash [32]byte, occurredAt, now time.Time) {
	k := org + "\x00" + id
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[k]; ok {
		return
	}
	r.m[k] = recentID{hash: hash, occurredAt: occurredAt, at: now}
	r.order.PushBack(k)
	for r.order.Len() > r.max || (r.order.Len() > 0 && now.Sub(r.m[r.order.Front().Value.(string)].at) > r.ttl) {
		delete(r.m, r.order.Remove(r.order.Front()).(string))
	}
}

func (r *recentIDs) get(org, id string) ([32]byte, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[org+"\x00"+id]
	return e.hash, e.occurredAt, ok
}
