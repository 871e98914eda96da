// Package consume is the batch-consumer engine every reader of the audit
// streams runs on: the ingestor (AUDIT_EVENTS into the store), each SIEM
// destination and the webhook fan-out (AUDIT_FANOUT).
//
// It is shaped like Watermill's router: the Engine owns the JetStream
// side — fetching from a durable pull consumer, the batch window (size and
// longest wait; while the handler is busy the next batch keeps growing up
// to the size, so a backlog is handled in full batches), keeping every
// fetched message from redelivery while it is
// held, acknowledging, releasing on stop, dead-lettering — and a plain
// Handler does the work. A Decoder turns each message into the handler's
// value as it arrives; the Handler receives a batch of decoded messages in
// stream order and returns a typed outcome:
//
//   - nil: every message of the batch is acknowledged;
//   - a *PoisonError (from Poison): the batch can never be handled; every
//     message is set aside;
//   - one or more *MessageError (from AtMessage, joined with errors.Join):
//     those messages are poison and set aside, and the rest of the batch,
//     which the handler did not complete, is handed to it again at once;
//   - any other error, typically a *TransientError (from Transient), which
//     may carry a Retry-After: the same batch is handed again after an
//     exponential backoff (cenkalti/backoff/v4), or after the Retry-After
//     when it is longer, until it succeeds or the engine stops.
//
// A Decoder's error is always poison; a *PoisonError names its class.
//
// Poison is set aside once for the whole system: the reader that sees every
// message of a stream first (the ingestor on AUDIT_EVENTS) runs with
// Config.DeadLetter and copies poison to AUDIT_DEAD_LETTER with its reason
// (topology.DeadLetter) before terminating it. Readers of a copy (SIEM
// destinations and the webhook fan-out on AUDIT_FANOUT) classify, count and
// log the same poison and terminate their copy without dead-lettering it
// again. Poison only one reader can see (a SIEM format that cannot encode
// an event) is marked Local and dead-lettered by that reader.
//
// While a batch is retried, every message the engine holds — the batch in
// the handler, the next batch already fetched and decoded, the batch being
// collected — is kept from redelivery by progress signals (InProgress)
// every third of the consumer's ack wait, so an outage longer than the ack
// wait ends with each message handled once and in stream order. On stop,
// the engine stops fetching, hands the batches it holds to the handler
// within ShutdownTimeout and releases (Nak) whatever is left, so another
// instance receives it at once.
//
// A consumer deleted while the engine runs (by an administrator, or with
// its stream) ends Run with ErrConsumerGone, unless the engine was given
// WithRebind: then it reports the loss (a Notifier, the counter
// audit_consume_consumer_lost_total), waits until the consumer exists
// again — recreated by whoever owns it — and reads on from it.
package consume
