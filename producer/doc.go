// Package producer is the library services import to record audit events.
//
// A service builds an event — usually with one of the typed constructors
// such as MemberRoleChanged — and hands it to Emit, which validates it
// against the action catalog, encodes it canonically and returns once
// JetStream has stored it. EmitAsync does the same without waiting, inside
// a bounded window of unacknowledged events; Flush waits for them and
// reports failures; Close flushes and refuses further events.
//
// The producer mints the event id (a ULID) and occurred_at when they are
// empty, and publishes with Nats-Msg-Id set to the id, so a publish retried
// after a lost acknowledgement is stored once. An event that fails
// validation is never published: the error lists every problem.
//
// The package depends only on the schemas module and nats.go.
package producer
