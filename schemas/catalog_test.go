package schemas

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestBuiltinCatalog(t *testing.T) {
	c := NewCatalog()
	actions := c.Actions()
	if len(actions) < 30 {
		t.Fatalf("%d built-in actions, want at least 30", len(actions))
	}
	if !slices.IsSortedFunc(actions, func(a, b ActionSpec) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Actions not sorted")
	}
	wantCategories := []string{"api_key", "audit", "auth", "billing", "member", "organization", "policy", "security"}
	if got := c.Categories(); !slices.Equal(got, wantCategories) {
		t.Errorf("categories %v, want %v", got, wantCategories)
	}
	used := map[string]int{}
	for _, a := range actions {
		used[a.Category]++
		if a.Description == "" {
			t.Errorf("%s: no description", a.Name)
		}
		for _, f := range a.Details {
			if f.Description == "" {
				t.Errorf("%s: field %s: no description", a.Name, f.Name)
			}
		}
		// By convention a built-in action's resource is its category.
		if res, _, _ := strings.Cut(a.Name, "."); res != a.Category {
			t.Errorf("%s: category %s", a.Name, a.Category)
		}
	}
	for _, cat := range wantCategories {
		if used[cat] == 0 {
			t.Errorf("category %s has no action", cat)
		}
	}
	spec, ok := c.Lookup(ActionMemberRoleChanged)
	if !ok || spec.Category != CategoryMember {
		t.Fatalf("Lookup: %+v, %v", spec, ok)
	}
	if f, ok := spec.Field("to_role"); !ok || !f.Required || f.Type != TypeString {
		t.Errorf("to_role: %+v, %v", f, ok)
	}
	if _, ok := c.Lookup("member.teleported"); ok {
		t.Error("unknown action found")
	}
}

func TestLookupReturnsCopy(t *testing.T) {
	c := NewCatalog()
	spec, _ := c.Lookup(ActionSecuritySSOConfigured)
	spec.Details[0].Required = false
	spec.Details[0].Enum[0] = "kerberos"
	again, _ := c.Lookup(ActionSecuritySSOConfigured)
	if !again.Details[0].Required || again.Details[0].Enum[0] != "saml" {
		t.Errorf("catalog modified through a returned spec: %+v", again.Details[0])
	}
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name string
		spec ActionSpec
		want error
	}{
		{"ok", ActionSpec{Name: "project.archived", Category: CategoryOrganization,
			Details: []Field{{Name: "project_name", Type: TypeString, Required: true}}}, nil},
		{"no details", ActionSpec{Name: "project.created", Category: CategoryOrganization}, nil},
		{"duplicate built-in", ActionSpec{Name: ActionMemberInvited, Category: CategoryMember}, ErrDuplicateAction},
		{"unknown category", ActionSpec{Name: "deploy.started", Category: "deploy"}, ErrUnknownCategory},
		{"empty category", ActionSpec{Name: "deploy.started"}, ErrUnknownCategory},
		{"no verb", ActionSpec{Name: "project", Category: CategoryOrganization}, ErrInvalidSpec},
		{"three tokens", ActionSpec{Name: "project.a.b", Category: CategoryOrganization}, ErrInvalidSpec},
		{"upper case", ActionSpec{Name: "Project.created", Category: CategoryOrganization}, ErrInvalidSpec},
		{"hyphen", ActionSpec{Name: "project.re-named", Category: CategoryOrganization}, ErrInvalidSpec},
		{"leading digit", ActionSpec{Name: "1project.created", Category: CategoryOrganization}, ErrInvalidSpec},
		{"wildcard", ActionSpec{Name: "project.*", Category: CategoryOrganization}, ErrInvalidSpec},
		{"too long", ActionSpec{Name: "p." + strings.Repeat("x", MaxActionLen), Category: CategoryOrganization}, ErrInvalidSpec},
		{"bad field name", ActionSpec{Name: "project.x", Category: CategoryOrganization,
			Details: []Field{{Name: "a.b", Type: TypeString}}}, ErrInvalidSpec},
		{"duplicate field", ActionSpec{Name: "project.x", Category: CategoryOrganization,
			Details: []Field{{Name: "a", Type: TypeString}, {Name: "a", Type: TypeInt}}}, ErrInvalidSpec},
		{"bad field type", ActionSpec{Name: "project.x", Category: CategoryOrganization,
			Details: []Field{{Name: "a", Type: "date"}}}, ErrInvalidSpec},
		{"missing field type", ActionSpec{Name: "project.x", Category: CategoryOrganization,
			Details: []Field{{Name: "a"}}}, ErrInvalidSpec},
		{"enum on int", ActionSpec{Name: "project.x", Category: CategoryOrganization,
			Details: []Field{{Name: "a", Type: TypeInt, Enum: []string{"1"}}}}, ErrInvalidSpec},
		{"duplicate enum", ActionSpec{Name: "project.x", Category: CategoryOrganization,
			Details: []Field{{Name: "a", Type: TypeString, Enum: []string{"x", "x"}}}}, ErrInvalidSpec},
	}
	c := NewCatalog()
	for _, tc := range tests {
		err := c.Register(tc.spec)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, ok := c.Lookup("project.archived"); !ok {
		t.Error("registered action not found")
	}
	if _, ok := c.Lookup("project.x"); ok {
		t.Error("rejected action registered")
	}
	// A fresh catalog is not affected by another's registrations.
	if _, ok := NewCatalog().Lookup("project.archived"); ok {
		t.Error("registration leaked into a new catalog")
	}
}

func TestRegisterCategory(t *testing.T) {
	c := NewCatalog()
	spec := ActionSpec{Name: "deploy.started", Category: "deploy", Description: "A deployment started"}
	if err := c.Register(spec); !errors.Is(err, ErrUnknownCategory) {
		t.Fatalf("got %v, want ErrUnknownCategory", err)
	}
	for _, bad := range []string{"", "Deploy", "de-ploy", "de.ploy", "_x", strings.Repeat("x", MaxCategoryLen+1)} {
		if err := c.RegisterCategory(bad); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("RegisterCategory(%q): got %v", bad, err)
		}
	}
	if err := c.RegisterCategory("deploy"); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterCategory("deploy"); err != nil {
		t.Fatalf("registering twice: %v", err)
	}
	if err := c.Register(spec); err != nil {
		t.Fatal(err)
	}
	if !c.HasCategory("deploy") || !slices.Contains(c.Categories(), "deploy") {
		t.Error("category not listed")
	}
	// An event of the new action validates.
	e := validEvent()
	e.Action, e.Category, e.Details = "deploy.started", "deploy", nil
	if err := c.Validate(&e); err != nil {
		t.Error(err)
	}
}

func TestZeroCatalog(t *testing.T) {
	var c Catalog
	if len(c.Actions()) != 0 || len(c.Categories()) != 0 {
		t.Error("zero catalog not empty")
	}
	e := validEvent()
	if err := c.Validate(&e); err == nil {
		t.Error("zero catalog accepted a built-in action")
	}
	if err := c.Register(ActionSpec{Name: "a.b", Category: "x"}); !errors.Is(err, ErrUnknownCategory) {
		t.Errorf("got %v", err)
	}
}

// TestCatalogConcurrent runs registrations, lookups and validations at once
// (meaningful under -race).
func TestCatalogConcurrent(t *testing.T) {
	c := NewCatalog()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				name := "custom.a" + string(rune('a'+g)) + string(rune('a'+i%26)) + string(rune('a'+i/26))
				if err := c.Register(ActionSpec{Name: name, Category: CategoryAudit}); err != nil {
					t.Error(err)
				}
				e := validEvent()
				if err := c.Validate(&e); err != nil {
					t.Error(err)
				}
				c.Lookup(name)
				c.Actions()
			}
		})
	}
	wg.Wait()
	if n := len(c.Actions()); n != len(NewCatalog().Actions())+200 {
		t.Errorf("%d actions", n)
	}
}
