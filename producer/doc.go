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
// empty, and publishes with Nats-Msg-Id set to the org and the id (MsgID),
// so a publish retried after a lost acknowledgement is stored once, and an
// id another org's event has does not make an event a duplicate. An event that fails
// validation is never published: the error lists every problem.
//
// The package depends only on the schemas module and nats.go.
package producer
