package query

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ProblemTypePrefix begins every problem "type"; the stable code follows,
// e.g. "urn:takumo-audit:problem:invalid-parameter".
const ProblemTypePrefix = "urn:takumo-audit:problem:"

// Problem codes, stable across releases.
const (
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodePlan             = "plan-not-available"
	CodeNotFound         = "not-found"
	CodeMethodNotAllowed = "method-not-allowed"
	CodeInvalidParameter = "invalid-parameter"
	CodeInvalidBody      = "invalid-body"
	CodeTooLarge         = "request-too-large"
	CodeURITooLong       = "uri-too-long"
	CodeRateLimited      = "rate-limited"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Parameter names the query parameter (or body field) at fault.
	Parameter string `json:"parameter,omitempty"`
}

var titles = map[string]string{
	CodeUnauthorized:     "Missing, invalid or expired bearer token",
	CodeForbidden:        "Permission denied",
	CodePlan:             "Not available on the Free plan",
	CodeNotFound:         "Not found",
	CodeMethodNotAllowed: "Method not allowed",
	CodeInvalidParameter: "Invalid parameter",
	CodeInvalidBody:      "Invalid request body",
	CodeTooLarge:         "Request too large",
	CodeURITooLong:       "URI too long",
	CodeRateLimited:      "Too many requests",
	CodeUnavailable:      "Service unavailable",
	CodeInternal:         "Internal error",
}

func writeProblem(w http.ResponseWriter, status int, code, detail, param string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="audit"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type: ProblemTypePrefix + code, Title: titles[code], Status: status, Detail: detail, Parameter: param,
	})
}

// paramError is a bad query parameter: 400 naming it.
type paramError struct {
	param, detail string
}

func (e *paramError) Error() string { return e.param + ": " + e.detail }

func badParam(param, detail string) *paramError { return &paramError{param: param, detail: detail} }

func retryAfter(w http.ResponseWriter, seconds int) {
	w.Header().Set("Retry-After", strconv.Itoa(seconds))
}
