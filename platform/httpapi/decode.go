package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/takumo/audit/platform/auditapi"
)

// DecodeJSON reads r's body, at most maxBytes, as exactly one JSON object
// into v, refusing unknown fields. Its errors are ready to answer: 413 for
// a body too large, 400 invalid-body otherwise, naming the field when one
// is at fault (an unknown field, a value of the wrong type).
func DecodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) *Error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return BadField("", "the body must hold exactly one JSON object")
		}
		return nil
	}
	var (
		mbe *http.MaxBytesError
		te  *json.UnmarshalTypeError
		se  *json.SyntaxError
	)
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, auditapi.CodeTooLarge, "the body exceeds %d bytes", maxBytes)
	case errors.As(err, &te) && te.Field != "":
		return BadField(te.Field, fmt.Sprintf("want a JSON %s, got %s", te.Type.Kind(), te.Value))
	case errors.As(err, &se):
		return BadField("", fmt.Sprintf("invalid JSON body (at byte %d): %v", se.Offset, err))
	case errors.Is(err, io.EOF):
		return BadField("", "the body must be a JSON object")
	}
	// encoding/json reports an unknown field with no error type of its own.
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return &Error{Status: http.StatusBadRequest, Code: auditapi.CodeInvalidBody, Detail: fmt.Sprintf("unknown field %q", f), Param: f}
	}
	return BadField("", "invalid JSON body: "+err.Error())
}
