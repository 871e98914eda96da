// Package query is the read API of the audit log: events newest first with
// filters, search and keyset pagination, a single event, streaming export
// (CSV or NDJSON), and the org's audit settings. It serves JSON over HTTP,
// authenticates bearer JWTs minted by the host application, answers errors
// as RFC 9457 problem details, and limits each token's request rate.
//
// A Service is built with New from plain configuration and its
// dependencies (the event store, org settings, a producer for its own
// audit events) and exposes an http.Handler; auditd mounts it, and
// cmd/query runs it on its own against a ClickHouse server. The API is
// described by openapi.json (served at /v1/openapi.json) and docs/query.md.
package query
