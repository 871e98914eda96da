package schemas

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodCatalogFile = `{
  "categories": ["deployment"],
  "actions": [
    {"name": "deployment.started", "category": "deployment",
     "description": "A deployment started",
     "details": [{"name": "environment", "type": "string", "required": true, "enum": ["staging", "production"]},
                 {"name": "replicas", "type": "int"}],
     "targets": ["service"]},
    {"name": "billing.refund_issued", "category": "billing", "description": "A refund was issued",
     "details": [{"name": "amount_cents", "type": "int", "required": true}]}
  ]
}
`

func TestCatalogFileAddsActions(t *testing.T) {
	c := NewCatalog()
	if err := c.LoadFile("catalog.json", []byte(goodCatalogFile)); err != nil {
		t.Fatal(err)
	}
	spec, ok := c.Lookup("deployment.started")
	if !ok || spec.Category != "deployment" || len(spec.Targets) != 1 {
		t.Fatalf("deployment.started: %+v %v", spec, ok)
	}
	ev := Event{ID: NewID(), OrgID: "org_a", Action: "deployment.started", Category: "deployment", OccurredAt: time.Now(),
		Actor: Actor{Type: ActorSvc, ID: "ci"}, Outcome: OutcomeSuccess,
		Targets: []Target{{Type: "service", ID: "api"}}, Details: map[string]any{"environment": "production"}}
	if err := c.Validate(&ev); err != nil {
		t.Fatal(err)
	}
	// Every rule of the file applies: a missing detail, a value outside the
	// enum and a target of another type are each named by path.
	ev.Details = map[string]any{"environment": "moon"}
	ev.Targets = []Target{{Type: "member", ID: "u1"}}
	err := c.Validate(&ev)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	for _, want := range []string{"details.environment", "targets[0].type"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not name %s", err, want)
		}
	}
	ev.Details = map[string]any{}
	ev.Targets = nil
	if err := c.Validate(&ev); err == nil || !strings.Contains(err.Error(), "details.environment") {
		t.Errorf("missing required detail: %v", err)
	}
}

func TestCatalogFileErrorsNameFileAndLine(t *testing.T) {
	for name, tc := range map[string]struct {
		file string
		line int
		want string
	}{
		"syntax":           {"{\n  \"actions\": [\n    {\"name\": \"a.b\",,}\n  ]\n}", 3, "invalid JSON"},
		"unknown field":    {"{\"actions\": [\n {\"name\": \"deploy.x\", \"category\": \"billing\", \"description\": \"d\"},\n {\"name\": \"deploy.y\", \"colour\": 1}\n]}", 3, "unknown field"},
		"unknown category": {"{\"actions\": [\n\n  {\"name\": \"deploy.x\", \"category\": \"deploy\", \"description\": \"d\"}\n]}", 3, "unknown category"},
		"duplicate":        {"{\"actions\": [\n{\"name\": \"member.invited\", \"category\": \"member\", \"description\": \"d\"}]}", 2, "already registered"},
		"bad name":         {"{\"actions\": [\n{\"name\": \"Deploy\", \"category\": \"billing\", \"description\": \"d\"}]}", 2, "lower snake"},
		"bad type":         {"{\"actions\": [\n{\"name\": \"billing.x\", \"category\": \"billing\", \"description\": \"d\",\n \"details\": [{\"name\": \"n\", \"type\": \"float\"}]}]}", 2, "unknown type"},
		"wrong json type":  {"{\"actions\": [\n{\"name\": 7}]}", 2, "want a JSON string"},
		"no description":   {"{\"actions\": [\n{\"name\": \"billing.x\", \"category\": \"billing\"}]}", 2, "description"},
		"truncated":        {"{\"actions\": [\n", 2, "end of the file"},
		"not an object":    {"[]", 1, "one JSON object"},
	} {
		err := NewCatalog().LoadFile("hosts.json", []byte(tc.file))
		var fe *CatalogFileError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fe.File != "hosts.json" || fe.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v (line %d), want line %d and %q", name, err, fe.Line, tc.line, tc.want)
		}
	}
}
