// Package schemas defines the v1 audit event envelope of Takumo Audit and
// everything needed to agree on it: the action catalog, validation, hard
// size limits, event IDs, NATS subjects, the canonical (RFC 8785) encoding
// and strict decoding. It depends on the standard library only, so any
// service, and any third party that receives webhooks, can import it
// cheaply.
//
// # Envelope
//
// Event is one audit record: who (Actor) did what (Action, in Category) to
// which resources (Targets), when (OccurredAt), with what result (Outcome,
// Reason) and action-specific Details, plus the request Context. Its JSON
// form writes timestamps as RFC 3339 UTC with milliseconds (TimeLayout).
//
// # Catalog
//
// A Catalog lists the actions events may use and the details each carries.
// NewCatalog returns the built-in actions (the Action* constants, one or
// more per Category* constant). A host application registers its own
// categories and actions at start-up with Catalog.RegisterCategory and
// Catalog.Register. Catalog.Validate checks an event against the envelope
// rules, the limits and the catalog, and reports every problem at once in
// a *ValidationError whose problems carry JSON paths such as
// "details.to_role".
//
// # Limits
//
// The Max* constants bound every part of an event; LIMITS.md publishes
// them. An event's canonical encoding is at most MaxEventBytes.
//
// # IDs and subjects
//
// NewID mints ULIDs that are strictly increasing within a process; the ID
// is the deduplication key of the whole pipeline. Subject names the NATS
// subject an event is published on, "audit.events.<org_id>.<action>".
//
// # Encoding
//
// Canonical returns an event's RFC 8785 (JCS) bytes without received_at:
// the bytes a producer publishes and that tamper evidence can hash.
// CanonicalJSON and Canonicalize are general JCS encoders. Decode parses
// untrusted input strictly (size, syntax, duplicate keys, unknown fields,
// types) and keeps detail numbers exact as json.Number.
//
// # Concurrency
//
// Every function of the package is safe for concurrent use. A Catalog may
// be shared by any number of goroutines, including while it is extended.
// Event and its parts are plain values; do not modify one while another
// goroutine validates or encodes it. The only global mutable state is the
// monotonic state of the ID generator, guarded by a mutex.
package schemas
