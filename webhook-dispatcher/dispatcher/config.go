package dispatcher

import (
	"errors"
	"fmt"
	"time"
)

// DefaultSchedule is the wait before each retry, after the first,
// immediate attempt: 8 attempts over about 27.6 hours, as Svix runs the
// Standard Webhooks schedule.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Config tunes delivery. The zero value plus SetDefaults is the production
// configuration.
type Config struct {
	// Schedule is the wait before retry n (n = 1..len). A delivery makes
	// len(Schedule)+1 attempts at most. Default DefaultSchedule.
	Schedule []time.Duration
	// Jitter spreads each wait by up to ±Jitter of itself (default 0.1;
	// negative means none).
	Jitter float64
	// RequestTimeout bounds one attempt, response body included (15 s).
	RequestTimeout time.Duration
	// AckWait is how long a delivery handed to an instance may go without
	// an answer before the server hands it out again (default
	// RequestTimeout + 15 s; at least RequestTimeout + 500 ms). Each
	// attempt restarts it before its request.
	AckWait time.Duration
	// EndpointConcurrency is how many requests one endpoint receives at
	// once (default 4).
	EndpointConcurrency int
	// MaxConcurrency bounds requests in flight over all endpoints (512).
	MaxConcurrency int
	// EndpointMaxPending bounds one endpoint's deliveries held by the
	// dispatcher, in flight or waiting for a retry (default 10,000); more
	// wait in the stream. It is what keeps a dead endpoint's backlog from
	// touching anyone else's.
	EndpointMaxPending int
	// DisableAfter disables an endpoint whose every attempt failed for this
	// long (default 5 days).
	DisableAfter time.Duration
	// MaxRetryAfter caps a receiver's Retry-After (default 24 h).
	MaxRetryAfter time.Duration
	// ResponseLimit is how much of a response body the log keeps (1 KiB).
	ResponseLimit int
	// Replicas of the streams and consumers (1 single node, 3 cluster).
	Replicas int
	// DeliveriesMaxBytes caps the delivery queue (default 4 GiB). When it
	// is full, events wait in AUDIT_FANOUT.
	DeliveriesMaxBytes int64
	// DuplicateWindow deduplicates delivery messages (default 20 min).
	DuplicateWindow time.Duration
	// AttemptLogPerEndpoint, AttemptLogMaxAge and AttemptLogMaxBytes limit
	// the attempt log (defaults 1,000 attempts, 30 days, 1 GiB).
	AttemptLogPerEndpoint int64
	AttemptLogMaxAge      time.Duration
	AttemptLogMaxBytes    int64
	// FanoutBatchSize and FanoutBatchWait bound the fan-out's batches of
	// events (defaults 1,000 and 20 ms).
	FanoutBatchSize int
	FanoutBatchWait time.Duration
	// ShutdownTimeout bounds the wait for requests in flight on stop (20 s).
	ShutdownTimeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule
	}
	if c.Jitter == 0 {
		c.Jitter = 0.1
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 15 * time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = c.RequestTimeout + 15*time.Second
	}
	if c.FanoutBatchSize == 0 {
		c.FanoutBatchSize = 1000
	}
	if c.FanoutBatchWait == 0 {
		c.FanoutBatchWait = 20 * time.Millisecond
	}
	if c.EndpointConcurrency == 0 {
		c.EndpointConcurrency = 4
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = 512
	}
	if c.EndpointMaxPending == 0 {
		c.EndpointMaxPending = 10_000
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = 5 * 24 * time.Hour
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = 24 * time.Hour
	}
	if c.ResponseLimit == 0 {
		c.ResponseLimit = 1024
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DeliveriesMaxBytes == 0 {
		c.DeliveriesMaxBytes = 4 << 30
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 20 * time.Minute
	}
	if c.AttemptLogPerEndpoint == 0 {
		c.AttemptLogPerEndpoint = 1000
	}
	if c.AttemptLogMaxAge == 0 {
		c.AttemptLogMaxAge = 30 * 24 * time.Hour
	}
	if c.AttemptLogMaxBytes == 0 {
		c.AttemptLogMaxBytes = 1 << 30
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = "Takumo-Audit-Webhooks/1"
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	for i, d := range c.Schedule {
		if d < 0 {
			errs = append(errs, fmt.Errorf("schedule[%d] is negative", i))
		}
	}
	if len(c.Schedule) > 30 {
		errs = append(errs, errors.New("schedule: at most 30 retries"))
	}
	if c.Jitter > 0.5 {
		errs = append(errs, fmt.Errorf("jitter must be at most 0.5, got %g", c.Jitter))
	}
	if c.RequestTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("request timeout must be at least 100ms, got %s", c.RequestTimeout))
	}
	if c.AckWait < c.RequestTimeout+500*time.Millisecond {
		errs = append(errs, fmt.Errorf("ack wait (%s) must be at least the request timeout (%s) + 500ms", c.AckWait, c.RequestTimeout))
	}
	if c.EndpointConcurrency < 1 || c.MaxConcurrency < c.EndpointConcurrency {
		errs = append(errs, fmt.Errorf("concurrency must satisfy 1 <= endpoint (%d) <= max (%d)", c.EndpointConcurrency, c.MaxConcurrency))
	}
	if c.EndpointMaxPending < c.EndpointConcurrency {
		errs = append(errs, fmt.Errorf("endpoint max pending (%d) must be at least the endpoint concurrency", c.EndpointMaxPending))
	}
	if c.DisableAfter <= 0 {
		errs = append(errs, errors.New("disable-after must be positive"))
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("replicas must be 1, 3 or 5, got %d", c.Replicas))
	}
	if c.DuplicateWindow < time.Minute {
		errs = append(errs, errors.New("duplicate window must be at least 1m"))
	}
	if c.DeliveriesMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("delivery queue size must be at least 1 MiB, got %d bytes", c.DeliveriesMaxBytes))
	}
	if c.AttemptLogMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("attempt log size must be at least 1 MiB, got %d bytes", c.AttemptLogMaxBytes))
	}
	return errors.Join(errs...)
}
