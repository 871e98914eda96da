// Package ingestapi is the HTTP ingest API: any service, in any language,
// records events with POST /v1/events, with the guarantees of the producer
// library. The events are in the envelope the producer publishes; the
// server fills what the producer fills (id, occurred_at, category),
// validates each against the catalog and publishes it through a
// producer.Producer connected as the producer identity, with the org and
// the event id as Nats-Msg-Id (producer.MsgID: ids are unique per org, so a
// key of one org cannot make another org's event a duplicate), answering
// only once JetStream has stored the accepted events. Each event's
// result — accepted, duplicate, conflict, invalid or failed — is in the
// answer, in request order.
//
// Writes need a service key ("Authorization: Bearer sk_<id>.<secret>"),
// issued to a named service and limited to orgs and, optionally, action
// filters, with a request budget of its own; or a bearer token with the
// audit.write permission, limited to its org. A read token cannot write.
// Each stored event says who wrote it in context.source: "<service>/<key
// id>" for a key, "token/<subject>" for a token. A producer given the same
// string with producer.WithSource stores the same bytes for the same
// event.
//
// Keys are created, listed and revoked through /v1/service-keys (an
// audit.manage token for its org, an audit.operator token for any orgs),
// each change recorded first (httpapi.Recorder). The bucket
// AUDIT_SERVICE_KEYS holds them with the SHA-256 of their secret, never
// the secret; only the api identity reads and writes it.
//
// GET /v1/catalog serves the catalog in use: the built-in actions and the
// host's (AUDIT_CATALOG_FILE).
package ingestapi
