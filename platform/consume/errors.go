package consume

import (
	"errors"
	"fmt"
	"time"
)

// PoisonError marks a message, or a batch, that can never be handled.
type PoisonError struct {
	// Class is a short, stable name of the cause ("decode", "validate",
	// "subject", "store", "format"), used as a metric label.
	Class string
	// Reason is the dead letter's reason; it starts with Class.
	Reason string
	// Local marks poison only this reader can see (another reader may
	// handle the message): it is dead-lettered even by a reader that
	// leaves shared poison to the stream's first reader.
	Local bool
	// Err is the cause, if any.
	Err error
}

// Poison returns a *PoisonError of class with the reason "<class>: <err>".
func Poison(class string, err error) *PoisonError {
	return &PoisonError{Class: class, Reason: class + ": " + err.Error(), Err: err}
}

func (e *PoisonError) Error() string { return "poison: " + e.Reason }

// Unwrap returns the cause.
func (e *PoisonError) Unwrap() error { return e.Err }

// TransientError is a failure worth retrying, optionally after at least
// RetryAfter (a receiver's Retry-After).
type TransientError struct {
	Err        error
	RetryAfter time.Duration
}

// Transient wraps err as a *TransientError.
func Transient(err error, retryAfter time.Duration) *TransientError {
	return &TransientError{Err: err, RetryAfter: retryAfter}
}

func (e *TransientError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}

// Unwrap returns the cause.
func (e *TransientError) Unwrap() error { return e.Err }

// MessageError is the outcome of one message of a batch, by its index in
// the batch the handler received. Its Err is a *PoisonError; any other
// error is taken as poison of class "handler".
type MessageError struct {
	Index int
	Err   error
}

// AtMessage returns a *MessageError for message i of the batch.
func AtMessage(i int, err error) *MessageError { return &MessageError{Index: i, Err: err} }

func (e *MessageError) Error() string { return fmt.Sprintf("message %d: %v", e.Index, e.Err) }

// Unwrap returns the message's error.
func (e *MessageError) Unwrap() error { return e.Err }

// poison returns the message's error as a *PoisonError.
func (e *MessageError) poison() *PoisonError {
	var p *PoisonError
	if errors.As(e.Err, &p) {
		return p
	}
	return &PoisonError{Class: "handler", Reason: "handler: " + e.Err.Error(), Err: e.Err}
}

// messageErrors returns every *MessageError in err's tree (errors.Join and
// wrapping), first seen first.
func messageErrors(err error) []*MessageError {
	var out []*MessageError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if m, ok := err.(*MessageError); ok {
			out = append(out, m)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}
