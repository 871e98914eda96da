package endpoints

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/schemas/actionfilter"
)

// Limits.
const (
	MaxEndpointsPerOrg = 50
	MaxDescription     = 512
	// MaxURL bounds an endpoint's URL.
	MaxURL = 2048
	// MaxFilters bounds the filters of one endpoint.
	MaxFilters  = destination.MaxFilters
	maxPrevious = 3
)

// Errors.
var (
	ErrNotFound = errors.New("endpoints: no such endpoint")
	ErrInvalid  = errors.New("endpoints: invalid endpoint")
	ErrTooMany  = fmt.Errorf("endpoints: an organization may have at most %d endpoints", MaxEndpointsPerOrg)
	// ErrAlreadyDisabled is returned by Disable when the endpoint was
	// disabled already, so only one instance records the change.
	ErrAlreadyDisabled = errors.New("endpoints: already disabled")
)

// Endpoint is one registered receiver. Values returned by the Registry are
// copies; changing them changes nothing stored. Filters (in the embedded
// destination.Fields) follow package actionfilter.
type Endpoint struct {
	destination.Fields
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	Enabled     bool   `json:"enabled"`
	// DisabledReason says why an endpoint is disabled ("receiver answered
	// 410 Gone", "every delivery failed for 120h0m0s", "disabled by usr_1").
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	// FailingSince is when the current run of failed attempts began; nil
	// after a success.
	FailingSince *time.Time     `json:"failing_since,omitempty"`
	Secrets      []SealedSecret `json:"secrets"`
}

// SealedSecret is a signing secret as stored: sealed. The first of an
// endpoint's secrets is the current one; the others are previous secrets
// that keep signing until ExpiresAt.
type SealedSecret struct {
	Sealed    string     `json:"sealed"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Spec is what a caller sets on create or update.
type Spec struct {
	// ID is the new endpoint's id, "ep_" and a schemas.NewID; empty mints
	// one. A caller that records the creation before making it sets it.
	ID          string
	URL         string
	Description string
	Filters     []string
}

// Change updates the URL, description and filters (nil fields stay) and
// the enabled flag (nil stays). Enabling clears the disabled reason and
// the failure run; disabling records reason.
type Change struct {
	URL         *string
	Description *string
	Filters     *[]string
	Enabled     *bool
	Reason      string
}

func clone(e Endpoint) Endpoint {
	e.Filters = slices.Clone(e.Filters)
	e.Secrets = slices.Clone(e.Secrets)
	return e
}

// InvalidError lists every problem of an endpoint spec, each with the
// field at fault ("url", "description", "filters", "filters[2]"). It
// unwraps to ErrInvalid.
type InvalidError struct {
	Fields   []string
	Problems []string
}

func (e *InvalidError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = e.Fields[i] + ": " + p
	}
	return ErrInvalid.Error() + ": " + strings.Join(msgs, "; ")
}

// Unwrap returns ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// validate checks s and normalizes its filters (sorted, no duplicates).
func validate(s *Spec, checkURL func(string) error) error {
	inv := &InvalidError{}
	add := func(field, problem string) {
		inv.Fields, inv.Problems = append(inv.Fields, field), append(inv.Problems, problem)
	}
	if err := schemas.CheckText(s.URL, MaxURL); err != nil {
		add("url", err.Error())
	} else if err := checkURL(s.URL); err != nil {
		add("url", err.Error())
	}
	if len(s.Description) > MaxDescription {
		add("description", fmt.Sprintf("at most %d bytes", MaxDescription))
	} else if err := schemas.CheckText(s.Description, MaxDescription); err != nil {
		add("description", err.Error())
	}
	if s.ID != "" && (!strings.HasPrefix(s.ID, "ep_") || !destination.ValidID(s.ID)) {
		add("id", "must be ep_ and an event id")
	}
	for _, p := range destination.FilterProblems("filters", s.Filters) {
		add(p.Field, p.Message)
	}
	if len(inv.Problems) > 0 {
		return inv
	}
	s.Filters = actionfilter.List(s.Filters).Normalize()
	return nil
}
