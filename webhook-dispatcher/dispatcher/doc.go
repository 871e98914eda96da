// Package dispatcher delivers audit events to webhook endpoints as the
// Standard Webhooks specification describes, with at-least-once delivery
// whose pending retries live in JetStream, never only in memory.
//
// Two stages, both on JetStream:
//
//  1. Fan-out. Every instance shares the durable consumer
//     "webhook-dispatcher" on AUDIT_FANOUT. For each event of an
//     Enterprise organization, every enabled endpoint of that organization
//     whose filters match the action gets one message on the work-queue
//     stream AUDIT_WEBHOOK_DELIVERIES, subject
//     audit.webhook.deliveries.<org_id>.<endpoint_id>, deduplicated by
//     "<event_id>.<endpoint_id>". The fan-out runs on the batch-consumer
//     engine (platform/consume): a batch of events is acknowledged only
//     once every one of its delivery messages is stored, so a crash in
//     between redelivers the events and the duplicates are dropped by the
//     stream. An undecodable message is counted (with its class), logged
//     and terminated; the ingestor, which reads every message first,
//     dead-letters it once. The consumer also reads the signed checkpoints
//     the log writer publishes into AUDIT_FANOUT (platform/tlog/witness):
//     each goes like an event whose action is "audit.checkpoint", with the
//     body {"type": "audit.checkpoint", "timestamp": <signed_at>, "data":
//     <the record>}, kind "checkpoint" and webhook-id the record's id.
//
//  2. Delivery. Each endpoint has its own durable consumer (a "lane") on
//     its subject, shared by every instance, with its own bound on
//     deliveries held (EndpointMaxPending) and its own request concurrency
//     (EndpointConcurrency), under a global bound (MaxConcurrency). A slow
//     or dead endpoint fills only its own lane; other endpoints' lanes and
//     the fan-out never wait for it. A failed attempt is negatively
//     acknowledged with the schedule's delay, so the retry waits on the
//     server and survives any dispatcher restart. The attempt number —
//     the position in the schedule — is stored in the bucket
//     AUDIT_WEBHOOK_RETRIES after a failed first attempt and before each
//     retry's request, and read back at the next delivery, so a restart
//     neither skips nor repeats a step (the server's delivery count also
//     counts deliveries no attempt followed: a message released by a
//     stopping instance, or lost with a crashed one); only a process
//     killed during a first attempt makes attempt 1 again. A lane takes a
//     message only when one of its workers is free, and each attempt
//     restarts the message's ack wait before its request, so a slow or
//     dead endpoint does not get a message handed out twice. A success
//     is acknowledged (with the
//     server's confirmation) before the next message of that slot is
//     taken.
//
// Responses: 2xx is success. 410 disables the endpoint and records
// audit.webhook_disabled. 429 and 503 retry after the receiver's
// Retry-After. A "webhook-delivery: abort-message" response header stops
// retries of that message. Everything else (3xx included: redirects are
// never followed; timeouts; refused addresses) is retried on the schedule;
// after the last attempt the delivery is marked failed in the attempt log
// and in metrics. An endpoint whose every attempt failed for DisableAfter
// is disabled and that is recorded as an audit event.
//
// Delivery is at least once: if a process dies between a receiver's 2xx
// and the acknowledgement reaching the server (a window of one round
// trip), that delivery is repeated. Receivers deduplicate on webhook-id,
// which is the event id on every attempt.
package dispatcher
