// Package httpapi is what every Takumo Audit HTTP API is built with: bearer
// token authentication with a per-token request budget (Auth), errors
// answered as RFC 9457 problem details with the stable codes of package
// auditapi (Error, WriteError), JSON bodies read with the field at fault
// named (DecodeJSON), a router that answers unknown paths and methods with
// problems too (Router), and the one place where a change made through an
// API meets its audit record (Recorder).
//
// The query service, the webhook and SIEM management APIs and the settings
// and export routes use it, so a client sees one error format: invalid
// input is always 400 with the query parameter or body field named in the
// problem's "parameter" member.
package httpapi
