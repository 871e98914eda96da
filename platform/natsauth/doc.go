// Package natsauth declares who may do what on the Takumo Audit bus: one
// NATS identity per role, each with exactly the publish and subscribe
// permissions the role's code needs, and nothing for anyone else.
//
// # Mechanism
//
// Every role is an nkey user of one account (the server's default account,
// which holds the JetStream streams and key-value buckets), with per-user
// publish and subscribe permissions. One account keeps the streams shared
// without exports and imports, and nkey seed files work with every NATS
// tool (nats --nkey <file>). A server configured with these users accepts
// no anonymous client.
//
// The roles and what they may do:
//
//   - admin owns the topology: it alone creates, updates and deletes
//     streams, consumers and buckets (every subject).
//   - producer publishes events on audit.events.> but for the log's own
//     records (audit.events.*.audit.*: the audit category), and receives
//     its acknowledgements on _INBOX.>. Nothing else.
//   - ingestor reads AUDIT_EVENTS through its durable consumer (info, next,
//     ack), publishes its dead letters and reads the org settings bucket.
//   - webhook-dispatcher reads AUDIT_FANOUT through its durable consumer,
//     owns the deliveries stream's per-endpoint consumers, publishes
//     deliveries and attempts, reads the settings bucket, reads and writes
//     the endpoints bucket (the failure run and the disabled flag live in
//     the endpoint record) and the retries bucket (each pending delivery's
//     schedule position), and records one action, audit.webhook_disabled.
//   - siem-forwarder reads AUDIT_FANOUT through the destinations'
//     consumers (never the dispatcher's), reads the destinations and
//     settings buckets, writes the status bucket and publishes dead letters.
//   - signed checkpoints (audit.checkpoints.<org>.<key_id>, bound by
//     AUDIT_FANOUT) are published by the log writer with its identity tlog;
//     no other role but admin may publish them. The dispatcher and the
//     forwarder read them through their AUDIT_FANOUT consumers. A
//     checkpoint forged by a holder of the tlog or admin seed still fails
//     the customer's signature check: the signing key is not on the bus.
//   - api (query service and management APIs) writes the settings,
//     endpoints, destinations and status buckets and the service keys
//     bucket (AUDIT_SERVICE_KEYS: the HTTP ingest API's keys, stored
//     hashed; no other role reads or writes it), publishes its own audit
//     records, creates and deletes SIEM destination consumers, enqueues
//     webhook replays and reads the attempt log.
//   - tlog (the transparency log's writer) reads and writes its lease
//     bucket AUDIT_TLOG_LEASE, reads the ingestor consumer's info (its
//     acknowledgement floor, where the writer recovers from), publishes
//     the signed checkpoints, and, for the catch-up after an upgrade, gets
//     messages of AUDIT_EVENTS by sequence (a stored event is confirmed
//     against its message before it is logged) and deletes the earlier
//     log writer's consumer tlog. It consumes nothing (the ingestor of its
//     process hands it the events to log), publishes no event, creates no
//     consumer and touches no other bucket; no other identity but admin
//     may write its lease.
//
// Every role but the producer receives replies on an inbox of its own
// (InboxPrefix), so the producer's _INBOX.> cannot see another role's
// fetched messages.
//
// # Residual capabilities
//
// NATS permissions match whole subject tokens, and a consumer name is one
// token, so a role allowed to create consumers with runtime names on a
// stream can create, update or delete any consumer of that stream except
// those explicitly denied:
//
//   - webhook-dispatcher: any consumer of AUDIT_WEBHOOK_DELIVERIES, a
//     stream only it reads; it may purge that stream (it does so when an
//     endpoint is deleted).
//   - siem-forwarder and api: consumers of AUDIT_FANOUT filtered on one
//     org's events and checkpoints (the create subject must carry the
//     filter audit.*.<org>.>, which the server checks against the
//     configuration), never the dispatcher's consumer. The forwarder
//     reads every org's events anyway; it may also fetch from and
//     acknowledge on another destination's consumer.
//   - the api publishes on the deliveries stream: a replay from the
//     management API enqueues deliveries. The api also writes the endpoint
//     records and holds the sealing keys, so this adds nothing it could not
//     already do.
//   - webhook-dispatcher writes whole endpoint records (it stores the
//     failure run and the disabled flag in them), so it could repoint an
//     endpoint (to an address the registry's checks accept), disable one,
//     or delete them (a key-value delete, or a rollup of the bucket, is a
//     write); it holds the endpoints' signing secrets anyway. Only moving
//     the failure state to a bucket of its own would take this away.
//   - tlog may read any message of AUDIT_EVENTS by sequence, not only
//     those its catch-up confirms; the events it logs reach it anyway.
//   - every role reading a bucket may create and delete consumers on that
//     bucket's stream (a watch is an ephemeral push consumer), with any
//     deliver subject; they read only that bucket, and the attack suite
//     checks that such a consumer aimed at the events or deliveries
//     subjects stores nothing there (the server delivers a push
//     consumer's messages to subscribers, not into streams). Deleting
//     another reader's watch delays that reader's view by the watch's
//     reset (about 10 s); it is recreated from the last revision it saw,
//     so no change is missed. The same holds for the SIEM consumers the
//     forwarder and the api create on AUDIT_FANOUT: aimed at another
//     consumer's acknowledgement subject, their heartbeats and flow
//     control acknowledge nothing.
//   - every role can have the server store a JetStream reply on any
//     subject of the account: the server checks no permission on a
//     request's reply subject, and JetStream publishes its answer (a
//     publish acknowledgement, an API answer) there, into whatever stream
//     or bucket binds it. The answer is the server's JSON, or empty;
//     never a body or headers the client chose. Each reader refuses it
//     and keeps what it had: bucket collections keep a key's last valid
//     value (platform/kvcollection), the log writer renews its lease over
//     it, the ingestor dead-letters it, checkpoint readers terminate it
//     as poison, the dispatcher terminates a delivery message without a
//     webhook id unsent, and the attack suite stores one on an org's
//     settings key with every role. Only an account of its own for the
//     streams and buckets, reached by the roles through imports (which
//     rewrite reply subjects), would remove the capability.
//
// Subjects are derived from nats.go's jetstream package (v1.55) and the
// server's JetStream API: $JS.API.STREAM.INFO.<stream>, $JS.API.CONSUMER.
// (INFO|MSG.NEXT|DELETE).<stream>.<consumer>, $JS.API.CONSUMER.CREATE.
// <stream>.<consumer>[.<filter>], $JS.API.DIRECT.GET.<stream>[.<subject>],
// $JS.API.STREAM.MSG.GET.<stream>, acknowledgements on $JS.ACK.<stream>.
// <consumer> followed by exactly five tokens (and the v2 form
// $JS.ACK.<domain>.<account>.<stream>.<consumer> followed by at least
// five: a pattern with fewer fixed tokens, such as $JS.ACK.*.*.<stream>.>,
// would also match another consumer's v1 subject and let a role
// acknowledge, terminate or take that consumer's deliveries), flow
// control replies on $JS.FC.<stream>.>, key-value
// writes on $KV.<bucket>.<key>. The tests in auditd run every role's code
// with its own identity against the real topology, and an attack suite
// checks that everything else is refused.
package natsauth
