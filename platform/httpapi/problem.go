package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
)

// Error is an error answer: a status, a stable problem code
// (auditapi.Code*), a detail safe to show the caller and, for invalid
// input, the parameter or body field at fault.
type Error struct {
	Status int
	Code   string
	Detail string
	// Param names the query parameter or body field at fault.
	Param string
	// Errors lists several problems of one body, each naming its field.
	Errors []string
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up).
	RetryAfter time.Duration
}

// Errorf returns an Error of status and code with a formatted detail.
func Errorf(status int, code, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Detail: fmt.Sprintf(format, a...)}
}

// BadParam is a 400 naming an invalid query parameter.
func BadParam(param, detail string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: auditapi.CodeInvalidParameter, Detail: param + ": " + detail, Param: param}
}

// BadField is a 400 naming an invalid body field, e.g. "url" or
// "filters[2]"; field may be "" when the body as a whole is at fault.
func BadField(field, detail string) *Error {
	d := detail
	if field != "" {
		d = field + ": " + detail
	}
	return &Error{Status: http.StatusBadRequest, Code: auditapi.CodeInvalidBody, Detail: d, Param: field}
}

func (e *Error) Error() string { return e.Detail }

// HTTPStatus is the status to answer with.
func (e *Error) HTTPStatus() int { return e.Status }

// Problem is e as the body it is answered with.
func (e *Error) Problem() auditapi.Problem {
	p := auditapi.NewProblem(e.Status, e.Code, e.Detail)
	p.Parameter, p.Errors = e.Param, e.Errors
	return p
}

// Write answers e: application/problem+json, never cached, with
// WWW-Authenticate on 401 and Retry-After when set.
func (e *Error) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="audit"`)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(e.RetryAfter.Seconds())))))
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e.Problem())
}

// WriteError answers err: an *Error (or one it wraps) as itself, a
// deadline as 503, anything else as 500 after logging it to log. A
// canceled context answers nothing: the client went away.
func WriteError(w http.ResponseWriter, log *zap.Logger, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
		e.Write(w)
	case errors.Is(err, context.DeadlineExceeded):
		Errorf(http.StatusServiceUnavailable, auditapi.CodeUnavailable, "the request took too long").Write(w)
	case errors.Is(err, context.Canceled):
	default:
		if log != nil {
			log.Error("request failed", zap.Error(err))
		}
		Errorf(http.StatusInternalServerError, auditapi.CodeInternal, "the request failed; it is logged").Write(w)
	}
}

// WriteJSON answers v as JSON with status, never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
