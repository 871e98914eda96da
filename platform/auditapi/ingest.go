package auditapi

import (
	"encoding/json"
	"time"
)

// The HTTP ingest API's contract (POST /v1/events, /v1/service-keys).

// Ingest limits: a request carries at most MaxIngestEvents events and
// MaxIngestBytes bytes of body.
const (
	MaxIngestEvents = 1000
	MaxIngestBytes  = 1 << 20
)

// ServiceKeyPrefix begins every service key; the key id follows, then a
// dot and the secret: "sk_<id>.<secret>".
const ServiceKeyPrefix = "sk_"

// IngestRequest is the body of POST /v1/events: events in the envelope the
// producer publishes (schemas.Event), as raw JSON so that each is
// validated and answered on its own.
type IngestRequest struct {
	Events []json.RawMessage `json:"events"`
}

// Per-event statuses of an ingest answer.
const (
	// IngestAccepted: the event is stored (JetStream acknowledged it).
	IngestAccepted = "accepted"
	// IngestDuplicate: an event with this id was already written within
	// the duplicate window, with the same content; this copy was not
	// stored again, and Seq is the first copy's sequence. Not an error.
	IngestDuplicate = "duplicate"
	// IngestConflict: an event with this id and other content was written
	// first; the first copy is kept (first write wins) and this one is
	// refused, not stored.
	IngestConflict = "conflict"
	// IngestInvalid: the event failed validation; Errors names every
	// problem with its path. Nothing was stored for it.
	IngestInvalid = "invalid"
	// IngestFailed: the event could not be stored now (the stream did not
	// acknowledge it in time); send it again with the same id.
	IngestFailed = "failed"
)

// IngestResult is the outcome of one event of a request, in request order.
type IngestResult struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	// ID is the event's id, minted by the server when the event had none.
	ID string `json:"id,omitempty"`
	// Seq is the event's sequence in the AUDIT_EVENTS stream (accepted and
	// duplicate).
	Seq uint64 `json:"seq,omitempty"`
	// Errors lists every problem of an invalid event, each "path: message".
	Errors []string `json:"errors,omitempty"`
	// Detail explains a conflict or a failure.
	Detail string `json:"detail,omitempty"`
}

// IngestResponse is the answer to POST /v1/events: 200 when every event is
// accepted or a duplicate, 207 otherwise (some invalid, conflicting or
// failed), with the counts and each event's result.
type IngestResponse struct {
	Accepted   int            `json:"accepted"`
	Duplicates int            `json:"duplicates"`
	Rejected   int            `json:"rejected"`
	Failed     int            `json:"failed"`
	Results    []IngestResult `json:"results"`
}

// ServiceKeySpec is the body of POST /v1/service-keys.
type ServiceKeySpec struct {
	// Service names the service the key is issued to: 1-64 bytes of
	// [a-z0-9_-]. It is written, with the key id, into context.source of
	// every event the key writes.
	Service string `json:"service"`
	// Orgs the key may write for (at most 100; an operator token may name
	// any, an audit.manage token only its own org, the default).
	Orgs []string `json:"orgs"`
	// Actions are action filters (schemas/actionfilter) the key may
	// write; empty for every action.
	Actions []string `json:"actions,omitempty"`
	// RatePerSecond and Burst bound the key's requests; zero takes the
	// server's defaults.
	RatePerSecond float64 `json:"rate_per_second,omitempty"`
	Burst         int     `json:"burst,omitempty"`
}

// ServiceKey is a service key as listed: never its secret.
type ServiceKey struct {
	ID            string     `json:"id"`
	Service       string     `json:"service"`
	Orgs          []string   `json:"orgs"`
	Actions       []string   `json:"actions"`
	RatePerSecond float64    `json:"rate_per_second"`
	Burst         int        `json:"burst"`
	CreatedAt     time.Time  `json:"created_at"`
	CreatedBy     string     `json:"created_by"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
}

// CreatedServiceKey is the answer to POST /v1/service-keys: the key and,
// this once, its secret value.
type CreatedServiceKey struct {
	ServiceKey
	// Key is the value to send as "Authorization: Bearer <key>". It is
	// shown once; the server keeps only its SHA-256.
	Key string `json:"key"`
}
