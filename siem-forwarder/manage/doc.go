// Package manage serves the SIEM destination management API: destinations
// of the caller's organization (create, list, get, update, delete), a test
// event, delivery status, pause and resume, and replay from a time. The
// query service's process mounts the Handler (auditd does, under
// /v1/siem/); this package depends on the caller's authentication only
// through the Authorizer interface, and on the destination store only
// through the small interfaces declared in manage.go.
//
// The package is laid out like the webhook management API
// (webhook-dispatcher/manage): manage.go holds the handler, its
// dependencies and the guard; destinations.go the resource's routes;
// delivery.go the delivery routes (test, status, pause, resume, replay).
//
// Every route requires the permission audit.manage and an organization on
// the Enterprise plan (others get 403 plan-not-available with the reason). The organization
// always comes from the Authorizer, never from the request, and a
// destination of another organization is answered 404. Every change is
// recorded as an audit event (pause, resume and replay as
// audit.siem_destination_updated). Errors are RFC 9457 problem details
// with the stable codes of package auditapi; invalid input is 400 naming
// the field in "parameter" and listing every problem in "errors".
//
// Credentials (HEC token, generic auth header value, TLS client key) are
// write-only: they are sealed at rest by package destinations and never
// returned; a destination shows only which ones are set.
//
// Routes, under Config.Prefix (default /v1/siem):
//
//	POST   /destinations               create
//	GET    /destinations               list
//	GET    /destinations/{id}          get
//	PATCH  /destinations/{id}          update fields and credentials
//	DELETE /destinations/{id}          delete (its backlog is released)
//	POST   /destinations/{id}/test     send one test event now; 502 with the transport's error if refused
//	GET    /destinations/{id}/status   state, last delivered event time, lag, last error
//	POST   /destinations/{id}/pause    stop delivering; the backlog stays in the stream
//	POST   /destinations/{id}/resume   deliver again, backlog first
//	POST   /destinations/{id}/replay   {"from": RFC 3339}: deliver again what the stream still holds from then on
//
// Replay reaches only events the AUDIT_FANOUT stream still holds: it keeps
// a bounded copy of the events (by size and age), not the archive. The
// answer carries oldest_available, the time of the oldest event it holds;
// events before it are not replayed (export them from the store instead).
package manage
