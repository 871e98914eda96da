package destination

import (
	"fmt"
	"time"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/schemas/actionfilter"
)

// MaxFilters bounds the action filters of one destination.
const MaxFilters = 64

// Fields are what every stored destination has. Kinds embed it.
type Fields struct {
	// ID is unique within the organization; a KV key token.
	ID string `json:"id"`
	// OrgID owns the destination (schemas.ValidOrgID).
	OrgID string `json:"org_id"`
	// Filters select the actions delivered (package actionfilter); none
	// means every action.
	Filters actionfilter.List `json:"filters,omitempty"`
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Key is the destination's KV key, "<org_id>.<id>".
func (f Fields) Key() string { return Key(f.OrgID, f.ID) }

// Key is the KV key of a destination.
func Key(orgID, id string) string { return orgID + "." + id }

// OrgPrefix is the KV key prefix of an organization's destinations.
func OrgPrefix(orgID string) string { return orgID + "." }

// Matches reports whether the destination takes action.
func (f Fields) Matches(action string) bool { return f.Filters.Match(action) }

// ValidID reports whether id can be a destination id (and a KV key
// token): the org-id alphabet and length.
func ValidID(id string) bool { return schemas.ValidOrgID(id) }

// Problem is one thing wrong with a destination: the request field at
// fault ("org_id", "filters[2]") and what is wrong.
type Problem struct {
	Field   string
	Message string
}

// Problems lists what is wrong with the fields; the kinds add their own
// and report them together. filtersField is the name the kind's API gives
// the filters ("filters", "actions").
func (f Fields) Problems(filtersField string) []Problem {
	var p []Problem
	if err := schemas.CheckOrgID(f.OrgID); err != nil {
		p = append(p, Problem{"org_id", err.Error()})
	}
	if f.ID != "" && !ValidID(f.ID) {
		p = append(p, Problem{"id", fmt.Sprintf("id %q is not a valid id", f.ID)})
	}
	return append(p, FilterProblems(filtersField, f.Filters)...)
}

// FilterProblems lists what is wrong with a list of action filters named
// field: too many, or one not in the grammar (field[i]).
func FilterProblems(field string, filters []string) []Problem {
	var p []Problem
	if len(filters) > MaxFilters {
		p = append(p, Problem{field, fmt.Sprintf("at most %d action filters", MaxFilters)})
	}
	for i, a := range filters {
		if err := actionfilter.Validate(a); err != nil {
			p = append(p, Problem{fmt.Sprintf("%s[%d]", field, i), err.Error()})
		}
	}
	return p
}
