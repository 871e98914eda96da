package auditapi

import (
	"encoding/json"
	"net/http"
	"strings"
)

// ProblemTypePrefix begins every problem "type"; the stable code follows,
// e.g. "urn:takumo-audit:problem:invalid-parameter".
const ProblemTypePrefix = "urn:takumo-audit:problem:"

// Problem codes, stable across releases. Every API answers an error with
// one of them.
const (
	// CodeUnauthorized (401): the bearer token is missing, invalid or
	// expired.
	CodeUnauthorized = "unauthorized"
	// CodeForbidden (403): the token lacks a permission or names another
	// org.
	CodeForbidden = "forbidden"
	// CodePlan (403): the org's plan does not include the feature.
	CodePlan = "plan-not-available"
	// CodeNotFound (404): no such resource in the caller's org.
	CodeNotFound = "not-found"
	// CodeMethodNotAllowed (405): the path exists, the method does not.
	CodeMethodNotAllowed = "method-not-allowed"
	// CodeInvalidParameter (400): a query parameter is invalid; Parameter
	// names it.
	CodeInvalidParameter = "invalid-parameter"
	// CodeInvalidBody (400): the request body is not valid JSON of the
	// expected shape, or a field is invalid; Parameter names the field
	// (e.g. "url", "filters[2]") when one is at fault.
	CodeInvalidBody = "invalid-body"
	// CodeConflict (409): the change conflicts with the current state (a
	// limit reached, a concurrent change).
	CodeConflict = "conflict"
	// CodeTooLarge (413): the request body is too large.
	CodeTooLarge = "request-too-large"
	// CodeUnsupportedMediaType (415): the body is not of the content type
	// the route takes (application/json for POST /v1/events).
	CodeUnsupportedMediaType = "unsupported-media-type"
	// CodeURITooLong (414): the query string is too long.
	CodeURITooLong = "uri-too-long"
	// CodeRateLimited (429): the token's request budget is spent; the
	// answer carries Retry-After.
	CodeRateLimited = "rate-limited"
	// CodeNotRecorded (503): the change's audit event could not be
	// recorded. Routes that record before changing (httpapi.Recorder.Apply)
	// did not make the change; the detail says which case applies.
	CodeNotRecorded = "change-not-recorded"
	// CodeDestinationFailed (502): a destination (SIEM receiver or webhook
	// endpoint) refused or did not answer a test delivery.
	CodeDestinationFailed = "destination-failed"
	// CodeNotImplemented (501): the deployment does not offer the route
	// (e.g. webhook replays without the event store).
	CodeNotImplemented = "not-implemented"
	// CodeUnavailable (503): the server cannot answer now (a timeout, a
	// feature switched off).
	CodeUnavailable = "unavailable"
	// CodeInternal (500): an unexpected failure; the server logged it.
	CodeInternal = "internal"
)

// Codes lists every problem code.
var Codes = []string{
	CodeUnauthorized, CodeForbidden, CodePlan, CodeNotFound, CodeMethodNotAllowed, CodeInvalidParameter,
	CodeInvalidBody, CodeConflict, CodeTooLarge, CodeUnsupportedMediaType, CodeURITooLong, CodeRateLimited, CodeNotRecorded,
	CodeDestinationFailed, CodeNotImplemented, CodeUnavailable, CodeInternal,
}

var titles = map[string]string{
	CodeUnauthorized:         "Missing, invalid or expired bearer token",
	CodeForbidden:            "Permission denied",
	CodePlan:                 "Not available on the organization's plan",
	CodeNotFound:             "Not found",
	CodeMethodNotAllowed:     "Method not allowed",
	CodeInvalidParameter:     "Invalid parameter",
	CodeInvalidBody:          "Invalid request body",
	CodeConflict:             "Conflict",
	CodeTooLarge:             "Request too large",
	CodeUnsupportedMediaType: "Unsupported media type",
	CodeURITooLong:           "URI too long",
	CodeRateLimited:          "Too many requests",
	CodeNotRecorded:          "Change not recorded",
	CodeDestinationFailed:    "Destination failed",
	CodeNotImplemented:       "Not implemented",
	CodeUnavailable:          "Service unavailable",
	CodeInternal:             "Internal error",
}

// Title is the fixed title of code ("" for an unknown code).
func Title(code string) string { return titles[code] }

// Problem is an RFC 9457 problem details object, the body of every error
// answer (Content-Type application/problem+json).
type Problem struct {
	// Type is ProblemTypePrefix followed by the code.
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Parameter names the query parameter or body field at fault, e.g.
	// "limit", "url", "filters[2]", "tls.ca_pem".
	Parameter string `json:"parameter,omitempty"`
	// Errors lists every problem of an invalid body when there are
	// several, each naming its field.
	Errors []string `json:"errors,omitempty"`
}

// NewProblem returns the problem of code with status and detail.
func NewProblem(status int, code, detail string) Problem {
	return Problem{Type: ProblemTypePrefix + code, Title: titles[code], Status: status, Detail: detail}
}

// Code is the stable code of p's type ("" when the type is not one of
// ours).
func (p Problem) Code() string {
	c, ok := strings.CutPrefix(p.Type, ProblemTypePrefix)
	if !ok {
		return ""
	}
	return c
}

// DecodeProblem reads an error answer's body. A body that is not a problem
// of ours (a proxy's HTML page, plain text) becomes a problem with the
// status, its status text as title and the body's text as detail, so a
// client always has one type to look at.
func DecodeProblem(status int, body []byte) Problem {
	var p Problem
	if json.Unmarshal(body, &p) == nil && p.Code() != "" {
		if p.Status == 0 {
			p.Status = status
		}
		return p
	}
	d := strings.TrimSpace(string(body))
	if len(d) > 512 {
		d = d[:512] + "…"
	}
	return Problem{Title: http.StatusText(status), Status: status, Detail: d}
}
