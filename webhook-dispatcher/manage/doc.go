// Package manage serves the webhook management API: endpoints of the
// caller's organization (create, list, get, update, delete), secret
// rotation, a test request, the attempt log and replays. The query
// service's process mounts the Handler (auditd does, under /v1/webhooks/);
// this package depends on the caller's authentication only through the
// Authorizer interface, and on the registry, the dispatcher and the attempt
// log only through the small interfaces declared in manage.go.
//
// Every route requires the permission audit.manage and an organization on
// the Enterprise plan (others get 403 plan-not-available with the reason).
// The organization always comes from the Authorizer, never from the
// request. Every change is recorded as an audit event (httpapi.Recorder).
// Errors are RFC 9457 problem details with the stable codes of package
// auditapi; invalid input is 400 naming the field ("url", "filters[2]").
//
// The package is laid out like the SIEM destination API
// (siem-forwarder/manage): manage.go holds the handler, its dependencies
// and the guard; endpoints.go the resource's routes; delivery.go the
// delivery routes (test, attempt log, replay).
//
// Routes, under Config.Prefix (default /v1/webhooks):
//
//	POST   /endpoints                      create; the response carries the secret, once
//	GET    /endpoints                      list
//	GET    /endpoints/{id}                 get
//	PATCH  /endpoints/{id}                 update url, description, filters, enabled
//	DELETE /endpoints/{id}                 delete
//	POST   /endpoints/{id}/rotate-secret   new secret; the old one signs too during the overlap
//	POST   /endpoints/{id}/test            send a test request now and return the attempt;
//	                                       502 destination-failed if the receiver refuses it
//	GET    /endpoints/{id}/deliveries      attempt log, newest first (?limit=, at most 1000)
//	POST   /endpoints/{id}/recover         {"since","until"}: replay stored events of that range
package manage
