package consume

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes an Engine.
type Config struct {
	// Name labels logs and is the consumer named in dead letters
	// (topology.DeadLetterSubject). Required. It labels metrics too,
	// unless MetricsName is set.
	Name string
	// MetricsName, when set, labels the metrics instead of Name: set it
	// when Name names a tenant (a per-destination consumer), so that
	// /metrics names no org or destination.
	MetricsName string
	// DeadLetter makes this reader copy poison to the dead-letter stream.
	// Set it only on the reader that sees every message of a stream first
	// (the ingestor); readers of a copy terminate shared poison without a
	// second dead letter.
	DeadLetter bool
	// BatchSize is the most messages handed to the handler at once
	// (default 1,000).
	BatchSize int
	// BatchWait is the longest a batch waits for more messages after its
	// first one arrived (default 200 ms).
	BatchWait time.Duration
	// IdleWait is how long one fetch waits for a first message while the
	// stream is idle (default 2 s).
	IdleWait time.Duration
	// AckWait is the consumer's ack wait (default 30 s); held messages are
	// signalled in progress every AckWait/3.
	AckWait time.Duration
	// RetryInitial and RetryMax bound the backoff between attempts of a
	// failing batch (defaults 200 ms and 30 s). Retries go on until the
	// batch succeeds or the engine stops.
	RetryInitial, RetryMax time.Duration
	// MaxRetryAfter caps a Retry-After carried by a *TransientError
	// (default 5 min).
	MaxRetryAfter time.Duration
	// ShutdownTimeout bounds the handling of the batches held on stop
	// (default 20 s).
	ShutdownTimeout time.Duration
	// OneAttemptOnStop makes each batch held on stop get one last attempt:
	// a failure releases it at once instead of retrying it until
	// ShutdownTimeout. Readers restarted on a configuration change (a SIEM
	// destination) set it, so a fix takes effect without waiting.
	OneAttemptOnStop bool
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.BatchWait == 0 {
		c.BatchWait = 200 * time.Millisecond
	}
	if c.IdleWait == 0 {
		c.IdleWait = 2 * time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 200 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = 5 * time.Minute
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.MetricsName == "" {
		c.MetricsName = c.Name
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if c.BatchSize < 1 || c.BatchSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("batch size must be between 1 and 1000000, got %d", c.BatchSize))
	}
	if c.BatchWait <= 0 {
		errs = append(errs, fmt.Errorf("batch wait must be positive, got %s", c.BatchWait))
	}
	if c.IdleWait < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("idle wait must be at least 10ms, got %s", c.IdleWait))
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("retry bounds must satisfy 0 < initial (%s) <= max (%s)", c.RetryInitial, c.RetryMax))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait must be at least 1s, got %s", c.AckWait))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
