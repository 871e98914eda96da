// Package query is the read API of the audit log: events newest first with
// filters, search and keyset pagination, a single event, streaming export
// (CSV or NDJSON), and the org's audit settings. It serves JSON over HTTP
// with the platform's HTTP API kit (package httpapi): bearer JWTs minted by
// the host application (claims and permissions in package auditapi), a
// request budget per token, and errors as RFC 9457 problem details with
// auditapi's stable codes. Service.Authorize lends its authentication to
// the management APIs mounted beside it (webhooks, SIEM destinations).
//
// A Service is built with New from plain configuration and its
// dependencies (the event store, org settings, a producer for its own
// audit events) and exposes an http.Handler; auditd mounts it, and
// cmd/query runs it on its own against a ClickHouse server. The API is
// described by openapi.json (served at /v1/openapi.json) and docs/query.md.
package query
