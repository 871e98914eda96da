package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func validEvent() Event {
	return Event{
		ID:         "01JDQ7Z8K3M6W1B5T9YV4C2N0F",
		OrgID:      "org_acme-01",
		Action:     ActionMemberRoleChanged,
		Category:   CategoryMember,
		OccurredAt: time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond),
		Actor: Actor{
			Type:      ActorUser,
			ID:        "usr_1",
			Name:      "Ada Lovelace",
			Email:     "ada@example.com",
			IP:        "203.0.113.7",
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		},
		Targets: []Target{{Type: "member", ID: "usr_2", Name: "Grace Hopper"}},
		Outcome: OutcomeSuccess,
		Details: map[string]any{"from_role": "viewer", "to_role": "admin"},
		Context: Context{RequestID: "req_123", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Source: "dashboard"},
	}
}

func TestValidateAcceptsValid(t *testing.T) {
	c := NewCatalog()
	for name, mutate := range map[string]func(*Event){
		"as is":           func(*Event) {},
		"uuidv7 id":       func(e *Event) { e.ID = "01936f4e-8a2b-7c3d-9e4f-a1b2c3d4e5f6" },
		"minted id":       func(e *Event) { e.ID = NewID() },
		"ipv6":            func(e *Event) { e.Actor.IP = "2001:db8::1" },
		"no targets":      func(e *Event) { e.Targets = nil },
		"max targets":     func(e *Event) { e.Targets = slices.Repeat([]Target{{Type: "member", ID: "x"}}, MaxTargets) },
		"system actor":    func(e *Event) { e.Actor = Actor{Type: ActorSystem, ID: "retention"} },
		"failure":         func(e *Event) { e.Outcome, e.Reason = OutcomeFailure, "permission denied\nby policy" },
		"unknown details": func(e *Event) { e.Details["ticket"] = "SUP-1"; e.Details["n"] = json.Number("1.5") },
		"soon in future":  func(e *Event) { e.OccurredAt = time.Now().Add(MaxFutureSkew - time.Minute) },
		"go int detail":   func(e *Event) { e.Details["count"] = int64(maxSafeInteger) },
		"struct detail": func(e *Event) {
			e.Details["meta"] = struct {
				A []int `json:"a"`
			}{[]int{1}}
		},
		"nested at limit": func(e *Event) {
			e.Details["a"] = map[string]any{"b": map[string]any{"c": map[string]any{"d": 1}}}
		},
		"org id at limit":  func(e *Event) { e.OrgID = strings.Repeat("a", MaxOrgIDLen) },
		"details at limit": func(e *Event) { e.Details["s"] = strings.Repeat("é", MaxDetailsStringLen/2) },
	} {
		e := validEvent()
		mutate(&e)
		if err := c.Validate(&e); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateRules(t *testing.T) {
	c := NewCatalog()
	tests := []struct {
		name   string
		mutate func(*Event)
		paths  []string // every problem expected, in order
	}{
		{"missing id", func(e *Event) { e.ID = "" }, []string{"id"}},
		{"lower-case ulid", func(e *Event) { e.ID = strings.ToLower(e.ID) }, []string{"id"}},
		{"ulid with I", func(e *Event) { e.ID = "01JDQ7Z8K3M6W1B5T9YV4C2NIF" }, []string{"id"}},
		{"ulid overflow", func(e *Event) { e.ID = "81JDQ7Z8K3M6W1B5T9YV4C2N0F" }, []string{"id"}},
		{"uuid v4", func(e *Event) { e.ID = "01936f4e-8a2b-4c3d-9e4f-a1b2c3d4e5f6" }, []string{"id"}},
		{"upper-case uuid", func(e *Event) { e.ID = "01936F4E-8A2B-7C3D-9E4F-A1B2C3D4E5F6" }, []string{"id"}},
		{"missing org", func(e *Event) { e.OrgID = "" }, []string{"org_id"}},
		{"org with dot", func(e *Event) { e.OrgID = "acme.corp" }, []string{"org_id"}},
		{"org with wildcard", func(e *Event) { e.OrgID = "*" }, []string{"org_id"}},
		{"org too long", func(e *Event) { e.OrgID = strings.Repeat("a", MaxOrgIDLen+1) }, []string{"org_id"}},
		{"missing action", func(e *Event) { e.Action = "" }, []string{"action"}},
		{"action casing", func(e *Event) { e.Action = "Member.RoleChanged" }, []string{"action"}},
		{"unknown action and category", func(e *Event) { e.Action, e.Category = "x.y", "x" }, []string{"action", "category"}},
		{"unknown action", func(e *Event) { e.Action = "member.teleported" }, []string{"action"}},
		{"missing category", func(e *Event) { e.Category = "" }, []string{"category"}},
		{"wrong category", func(e *Event) { e.Category = CategoryAuth }, []string{"category"}},
		{"missing occurred_at", func(e *Event) { e.OccurredAt = time.Time{} }, []string{"occurred_at"}},
		{"before 2000", func(e *Event) { e.OccurredAt = time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC) }, []string{"occurred_at"}},
		{"far future", func(e *Event) { e.OccurredAt = time.Now().Add(MaxFutureSkew + time.Hour) }, []string{"occurred_at"}},
		{"missing actor", func(e *Event) { e.Actor = Actor{} }, []string{"actor.type", "actor.id"}},
		{"bad actor type", func(e *Event) { e.Actor.Type = "robot" }, []string{"actor.type"}},
		{"bad email", func(e *Event) { e.Actor.Email = "ada at example" }, []string{"actor.email"}},
		{"named email", func(e *Event) { e.Actor.Email = "Ada <ada@example.com>" }, []string{"actor.email"}},
		{"bad ip", func(e *Event) { e.Actor.IP = "203.0.113.300" }, []string{"actor.ip"}},
		{"ip with zone", func(e *Event) { e.Actor.IP = "fe80::1%eth0" }, []string{"actor.ip"}},
		{"name with newline", func(e *Event) { e.Actor.Name = "Ada\nLovelace" }, []string{"actor.name"}},
		{"actor id with NUL", func(e *Event) { e.Actor.ID = "usr\x00" }, []string{"actor.id"}},
		{"long user agent", func(e *Event) { e.Actor.UserAgent = strings.Repeat("x", MaxUserAgentLen+1) }, []string{"actor.user_agent"}},
		{"too many targets", func(e *Event) {
			e.Targets = slices.Repeat([]Target{{Type: "member", ID: "x"}}, MaxTargets+1)
		}, []string{"targets"}},
		{"target without type and id", func(e *Event) {
			e.Targets = append(e.Targets, Target{Type: "member", ID: "x"}, Target{Name: "?"})
		}, []string{"targets[2].type", "targets[2].id"}},
		{"target type casing", func(e *Event) { e.Targets[0].Type = "APIKey" }, []string{"targets[0].type"}},
		{"target id with C1 control", func(e *Event) { e.Targets[0].ID = "a\u0085b" }, []string{"targets[0].id"}},
		{"missing outcome", func(e *Event) { e.Outcome = "" }, []string{"outcome"}},
		{"bad outcome", func(e *Event) { e.Outcome = "ok" }, []string{"outcome"}},
		{"failure without reason", func(e *Event) { e.Outcome = OutcomeFailure }, []string{"reason"}},
		{"reason on success", func(e *Event) { e.Reason = "because" }, []string{"reason"}},
		{"reason too long", func(e *Event) {
			e.Outcome, e.Reason = OutcomeFailure, strings.Repeat("x", MaxReasonLen+1)
		}, []string{"reason"}},
		{"required detail missing", func(e *Event) { delete(e.Details, "to_role") }, []string{"details.to_role"}},
		{"required detail empty", func(e *Event) { e.Details["to_role"] = "" }, []string{"details.to_role"}},
		{"detail wrong type", func(e *Event) { e.Details["to_role"] = 3 }, []string{"details.to_role"}},
		{"detail null", func(e *Event) { e.Details["to_role"] = nil }, []string{"details.to_role"}},
		{"nil details", func(e *Event) { e.Details = nil }, []string{"details.from_role", "details.to_role"}},
		{"bad detail key", func(e *Event) { e.Details["bad key"] = 1 }, []string{"details"}},
		{"long detail key", func(e *Event) { e.Details[strings.Repeat("k", MaxDetailsKeyLen+1)] = 1 }, []string{"details"}},
		{"too many detail keys", func(e *Event) {
			for i := range MaxDetailsKeys {
				e.Details[fmt.Sprintf("k%d", i)] = i
			}
		}, []string{"details"}},
		{"long detail string", func(e *Event) { e.Details["note"] = strings.Repeat("x", MaxDetailsStringLen+1) }, []string{"details.note"}},
		{"long nested string", func(e *Event) {
			e.Details["list"] = []string{"ok", strings.Repeat("x", MaxDetailsStringLen+1)}
		}, []string{"details.list[1]"}},
		{"detail control char", func(e *Event) { e.Details["note"] = "a\x1bb" }, []string{"details.note"}},
		{"detail invalid utf-8", func(e *Event) { e.Details["note"] = "a\xffb" }, []string{"details.note"}},
		{"too deep", func(e *Event) {
			e.Details["a"] = map[string]any{"b": map[string]any{"c": map[string]any{"d": []any{1}}}}
		}, []string{"details.a.b.c.d"}},
		{"long array", func(e *Event) { e.Details["ids"] = make([]any, MaxDetailsArrayLen+1) }, []string{"details.ids"}},
		{"nested bad key", func(e *Event) { e.Details["m"] = map[string]string{"a.b": "x"} }, []string{"details.m"}},
		{"unsafe integer", func(e *Event) { e.Details["n"] = uint64(1 << 60) }, []string{"details.n"}},
		{"unsafe integer literal", func(e *Event) { e.Details["n"] = json.Number("9007199254740993") }, []string{"details.n"}},
		{"number overflow", func(e *Event) { e.Details["n"] = json.Number("1e400") }, []string{"details.n"}},
		// Numbers with more digits than their double: the log would hold
		// another number than the store shows.
		{"unsafe integer with a fraction", func(e *Event) { e.Details["n"] = json.Number("9007199254740993.0") }, []string{"details.n"}},
		{"unsafe integer with an exponent", func(e *Event) { e.Details["n"] = json.Number("9.007199254740993e15") }, []string{"details.n"}},
		{"decimal beyond a double", func(e *Event) { e.Details["n"] = json.Number("0.10000000000000001") }, []string{"details.n"}},
		{"underflow to zero", func(e *Event) { e.Details["n"] = json.Number("1e-400") }, []string{"details.n"}},
		{"NaN", func(e *Event) { e.Details["n"] = math.NaN() }, []string{"details.n"}},
		{"invalid json.Number", func(e *Event) { e.Details["n"] = json.Number("0x10") }, []string{"details.n"}},
		{"unmarshalable", func(e *Event) { e.Details["f"] = func() {} }, []string{"details.f"}},
		{"long request id", func(e *Event) { e.Context.RequestID = strings.Repeat("r", MaxContextLen+1) }, []string{"context.request_id"}},
		{"source with tab", func(e *Event) { e.Context.Source = "a\tb" }, []string{"context.source"}},
		{"too large", func(e *Event) {
			for i := range 40 {
				e.Details["k"+string(rune('a'+i%26))+string(rune('a'+i/26))] = strings.Repeat("x", MaxDetailsStringLen)
			}
		}, []string{""}},
		{"many problems at once", func(e *Event) {
			e.ID = "nope"
			e.Actor.Email = "nope"
			e.Targets[0].ID = ""
			e.Outcome = OutcomeFailure
			e.Details["to_role"] = true
		}, []string{"id", "actor.email", "targets[0].id", "reason", "details.to_role"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validEvent()
			tc.mutate(&e)
			err := c.Validate(&e)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want *ValidationError", err)
			}
			var paths []string
			for _, p := range ve.Problems {
				paths = append(paths, p.Path)
			}
			if !slices.Equal(paths, tc.paths) {
				t.Errorf("paths %q, want %q\n%v", paths, tc.paths, err)
			}
		})
	}
}

func TestValidateFieldTypes(t *testing.T) {
	c := &Catalog{}
	if err := c.RegisterCategory("test"); err != nil {
		t.Fatal(err)
	}
	err := c.Register(ActionSpec{Name: "thing.done", Category: "test", Details: []Field{
		{Name: "s", Type: TypeString, Required: true, Enum: []string{"a", "b"}},
		{Name: "i", Type: TypeInt, Required: true},
		{Name: "n", Type: TypeNumber, Required: true},
		{Name: "b", Type: TypeBool, Required: true},
		{Name: "l", Type: TypeStringList, Required: true, Enum: []string{"x", "y"}},
		{Name: "o", Type: TypeObject, Required: true},
		{Name: "any", Type: TypeAny, Required: true},
		{Name: "opt", Type: TypeString},
	}})
	if err != nil {
		t.Fatal(err)
	}
	base := func(d map[string]any) *Event {
		e := validEvent()
		e.Action, e.Category, e.Details = "thing.done", "test", d
		return &e
	}
	good := []map[string]any{
		{"s": "a", "i": 3, "n": 1.5, "b": true, "l": []string{"x"}, "o": map[string]any{}, "any": nil},
		{"s": "b", "i": json.Number("-7"), "n": json.Number("2e3"), "b": false, "l": []any{}, "o": map[string]string{"k": "v"}, "any": []any{1}},
		{"s": "b", "i": 4.0, "n": 1, "b": false, "l": []any{"y", "x"}, "o": map[string]any{"k": 1}, "any": "x", "opt": ""},
		{"s": "b", "i": json.Number("1e3"), "n": 1, "b": false, "l": []string{}, "o": struct{}{}, "any": 0},
	}
	for i, d := range good {
		if err := c.Validate(base(d)); err != nil {
			t.Errorf("good[%d]: %v", i, err)
		}
	}
	err = c.Validate(base(map[string]any{
		"s": "c", "i": 1.5, "n": "1", "b": "true", "l": []any{"x", 1, "z"}, "o": []any{},
	}))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	var paths []string
	for _, p := range ve.Problems {
		paths = append(paths, p.Path)
	}
	want := []string{"details.any", "details.b", "details.i", "details.l[1]", "details.l[2]", "details.n", "details.o", "details.s"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q\n%v", paths, want, err)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	e := validEvent()
	e.ID = ""
	e.Details["to_role"] = 1
	err := NewCatalog().Validate(&e)
	want := `schemas: invalid event (2 problems): id: required; details.to_role: must be a string, got number`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if err := NewCatalog().Validate(nil); err == nil {
		t.Error("nil event: want error")
	}
}

func TestValidateDoesNotModify(t *testing.T) {
	e := validEvent()
	e.Details["n"] = 1
	before, _ := json.Marshal(e)
	_ = NewCatalog().Validate(&e)
	after, _ := json.Marshal(e)
	if string(before) != string(after) {
		t.Errorf("event changed:\n%s\n%s", before, after)
	}
	if _, ok := e.Details["n"].(int); !ok {
		t.Errorf("details value replaced: %T", e.Details["n"])
	}
}
