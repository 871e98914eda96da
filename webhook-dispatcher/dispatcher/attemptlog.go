package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Outcomes of an attempt in the log.
const (
	OutcomeSuccess  = "success"  // 2xx
	OutcomeRetry    = "retry"    // failed; another attempt is scheduled
	OutcomeFailed   = "failed"   // failed; no attempt is left (or the receiver aborted)
	OutcomeDisabled = "disabled" // failed and the endpoint was disabled
	OutcomeSkipped  = "skipped"  // not sent: the endpoint is disabled or the plan lacks webhooks
	OutcomeTest     = "test"     // a test request from the management API
)

// Attempt is one delivery attempt as the log keeps it.
type Attempt struct {
	Time       time.Time  `json:"time"`
	EndpointID string     `json:"endpoint_id"`
	MessageID  string     `json:"webhook_id"`
	Kind       string     `json:"kind,omitempty"`
	Attempt    int        `json:"attempt"`
	Outcome    string     `json:"outcome"`
	StatusCode int        `json:"status_code,omitempty"`
	LatencyMS  float64    `json:"latency_ms"`
	Response   string     `json:"response,omitempty"`
	Error      string     `json:"error,omitempty"`
	NextRetry  *time.Time `json:"next_attempt_at,omitempty"`
}

// Attempts reads the attempt log.
type Attempts struct {
	js jetstream.JetStream
}

// NewAttempts returns a reader of the log. Safe for concurrent use.
func NewAttempts(js jetstream.JetStream) *Attempts { return &Attempts{js: js} }

// MaxAttemptsRead bounds one Recent call.
const MaxAttemptsRead = 1000

// Recent returns up to limit of the endpoint's latest attempts, newest
// first.
func (a *Attempts) Recent(ctx context.Context, org, endpoint string, limit int) ([]Attempt, error) {
	if limit <= 0 || limit > MaxAttemptsRead {
		limit = MaxAttemptsRead
	}
	subj := attemptSubject(org, endpoint)
	s, err := a.js.Stream(ctx, AttemptsStream)
	if err != nil {
		return nil, fmt.Errorf("attempt log: %w", err)
	}
	last, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return []Attempt{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("attempt log: %w", err)
	}
	cons, err := a.js.OrderedConsumer(ctx, AttemptsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("attempt log: %w", err)
	}
	ring := make([]Attempt, 0, limit)
	for done := false; !done; {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("attempt log: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var at Attempt
			if json.Unmarshal(m.Data(), &at) == nil {
				if len(ring) == limit {
					copy(ring, ring[1:])
					ring = ring[:limit-1]
				}
				ring = append(ring, at)
			}
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= last.Sequence {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("attempt log: %w", err)
		}
		if n == 0 {
			break
		}
	}
	for i, j := 0, len(ring)-1; i < j; i, j = i+1, j-1 {
		ring[i], ring[j] = ring[j], ring[i]
	}
	return ring, nil
}
