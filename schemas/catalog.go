package schemas

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Errors returned by Catalog.Register and Catalog.RegisterCategory (match
// them with errors.Is).
var (
	// ErrInvalidSpec: the action name, its fields or the category name are
	// malformed.
	ErrInvalidSpec = errors.New("invalid action spec")
	// ErrDuplicateAction: an action of that name is already registered;
	// built-in actions cannot be replaced.
	ErrDuplicateAction = errors.New("action already registered")
	// ErrUnknownCategory: the spec's category is not in the catalog.
	ErrUnknownCategory = errors.New("unknown category")
)

// FieldType is the JSON type a detail field must have.
type FieldType string

// Field types.
const (
	// TypeString is a JSON string. A required string must not be empty.
	TypeString FieldType = "string"
	// TypeInt is a JSON number with an integral value within
	// ±(2^53-1), the integers a canonical (IEEE 754) number holds exactly.
	TypeInt FieldType = "int"
	// TypeNumber is any finite JSON number.
	TypeNumber FieldType = "number"
	// TypeBool is true or false.
	TypeBool FieldType = "bool"
	// TypeStringList is an array of strings (possibly empty).
	TypeStringList FieldType = "string_list"
	// TypeObject is a JSON object.
	TypeObject FieldType = "object"
	// TypeAny is any JSON value, including null.
	TypeAny FieldType = "any"
)

// Valid reports whether t is one of the defined field types.
func (t FieldType) Valid() bool {
	switch t {
	case TypeString, TypeInt, TypeNumber, TypeBool, TypeStringList, TypeObject, TypeAny:
		return true
	}
	return false
}

// Field describes one key of an action's details.
type Field struct {
	// Name is the details key, matching [A-Za-z0-9_-]{1,40}; lower snake
	// case by convention.
	Name string `json:"name"`
	// Type is the JSON type the value must have.
	Type FieldType `json:"type"`
	// Required fields must be present (and, for TypeString, non-empty).
	Required bool `json:"required"`
	// Description says what the value means, for people reading the log.
	Description string `json:"description,omitempty"`
	// Enum, when not empty, lists the values allowed for a TypeString
	// field or for each element of a TypeStringList field.
	Enum []string `json:"enum,omitempty"`
}

// ActionSpec describes one action of the catalog.
type ActionSpec struct {
	// Name is "<resource>.<verb>" in lower snake case, e.g.
	// "member.role_changed".
	Name string `json:"name"`
	// Category is the catalog category the action belongs to; events of
	// this action must carry it.
	Category string `json:"category"`
	// Description says what happened, for people reading the log.
	Description string `json:"description"`
	// Details lists the keys the action's details may carry. Keys not
	// listed are allowed too, within the details limits.
	Details []Field `json:"details"`
	// Targets, when not empty, lists the target types events of the action
	// may name (lower snake case, e.g. "deployment"); a target of another
	// type is refused. Empty allows any type.
	Targets []string `json:"targets,omitempty"`
}

// Field returns the spec's field named name.
func (s ActionSpec) Field(name string) (Field, bool) {
	for _, f := range s.Details {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// clone returns a deep copy of s, so neither the caller nor the catalog can
// change the other's copy.
func (s ActionSpec) clone() ActionSpec {
	s.Details = append([]Field{}, s.Details...)
	s.Targets = slices.Clone(s.Targets)
	for i := range s.Details {
		s.Details[i].Enum = slices.Clone(s.Details[i].Enum)
	}
	return s
}

// Catalog is the set of actions and categories events may use, with the
// details each action carries. NewCatalog returns one preloaded with the
// built-in actions; a host application adds its own with RegisterCategory
// and Register at start-up, without forking.
//
// A Catalog is safe for concurrent use: Register and RegisterCategory may
// run while other goroutines call Lookup, Actions, Categories and
// Validate. Registrations are permanent: an action or category cannot be
// removed or replaced, so an event that validated once keeps validating.
// The zero value is an empty catalog with no categories.
type Catalog struct {
	mu         sync.RWMutex
	categories map[string]struct{}
	actions    map[string]ActionSpec
}

// NewCatalog returns a catalog holding the built-in categories
// (organization, member, auth, api_key, policy, security, billing, audit)
// and the built-in actions (the Action* constants).
func NewCatalog() *Catalog {
	c := &Catalog{}
	for _, cat := range builtinCategories() {
		if err := c.RegisterCategory(cat); err != nil {
			panic("schemas: built-in category: " + err.Error())
		}
	}
	for _, spec := range builtinActions() {
		if err := c.Register(spec); err != nil {
			panic("schemas: built-in action: " + err.Error())
		}
	}
	return c
}

// RegisterCategory adds a category, so that actions of a new kind can be
// registered in it. The name must be lower snake case and at most
// MaxCategoryLen bytes. Registering a category that exists is a no-op, so
// independent parts of a host application may each register the
// categories they use.
func (c *Catalog) RegisterCategory(name string) error {
	if len(name) > MaxCategoryLen || !isLowerSnake(name) {
		return fmt.Errorf("schemas: category %q: %w: want lower snake case, at most %d bytes",
			name, ErrInvalidSpec, MaxCategoryLen)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.categories == nil {
		c.categories = map[string]struct{}{}
	}
	c.categories[name] = struct{}{}
	return nil
}

// Register adds an action. It fails with ErrInvalidSpec when the name is
// not "<resource>.<verb>" in lower snake case (at most MaxActionLen bytes)
// or a field is malformed (name not a valid details key, duplicate name,
// unknown type, Enum on a type other than string or string list, more than
// MaxDetailsKeys fields); with ErrUnknownCategory when the category has not
// been registered (call RegisterCategory first to add one, so a typo in a
// category name cannot silently create a new category); and with
// ErrDuplicateAction when the name is taken, built-in actions included.
// The catalog keeps its own copy of spec.
func (c *Catalog) Register(spec ActionSpec) error {
	if err := checkSpec(spec); err != nil {
		return fmt.Errorf("schemas: action %q: %w", spec.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.categories[spec.Category]; !ok {
		return fmt.Errorf("schemas: action %q: %w %q (register it with RegisterCategory first)",
			spec.Name, ErrUnknownCategory, spec.Category)
	}
	if _, ok := c.actions[spec.Name]; ok {
		return fmt.Errorf("schemas: action %q: %w", spec.Name, ErrDuplicateAction)
	}
	if c.actions == nil {
		c.actions = map[string]ActionSpec{}
	}
	c.actions[spec.Name] = spec.clone()
	return nil
}

func checkSpec(spec ActionSpec) error {
	if len(spec.Name) > MaxActionLen || !isActionName(spec.Name) {
		return fmt.Errorf("%w: name must be <resource>.<verb> in lower snake case, at most %d bytes",
			ErrInvalidSpec, MaxActionLen)
	}
	if len(spec.Details) > MaxDetailsKeys {
		return fmt.Errorf("%w: %d detail fields, limit is %d", ErrInvalidSpec, len(spec.Details), MaxDetailsKeys)
	}
	seen := map[string]bool{}
	for i, f := range spec.Details {
		switch {
		case len(f.Name) > MaxDetailsKeyLen || !isToken(f.Name):
			return fmt.Errorf("%w: details[%d]: name %q must match [A-Za-z0-9_-]{1,%d}",
				ErrInvalidSpec, i, f.Name, MaxDetailsKeyLen)
		case seen[f.Name]:
			return fmt.Errorf("%w: details[%d]: duplicate field %q", ErrInvalidSpec, i, f.Name)
		case !f.Type.Valid():
			return fmt.Errorf("%w: field %q: unknown type %q", ErrInvalidSpec, f.Name, f.Type)
		case len(f.Enum) > 0 && f.Type != TypeString && f.Type != TypeStringList:
			return fmt.Errorf("%w: field %q: enum needs type %s or %s", ErrInvalidSpec, f.Name, TypeString, TypeStringList)
		}
		seen[f.Name] = true
		for j, v := range f.Enum {
			if v == "" || slices.Contains(f.Enum[:j], v) {
				return fmt.Errorf("%w: field %q: enum values must be non-empty and distinct", ErrInvalidSpec, f.Name)
			}
		}
	}
	if len(spec.Targets) > MaxTargets {
		return fmt.Errorf("%w: %d target types, limit is %d", ErrInvalidSpec, len(spec.Targets), MaxTargets)
	}
	for i, t := range spec.Targets {
		switch {
		case len(t) > MaxTargetTypeLen || !isLowerSnake(t):
			return fmt.Errorf("%w: targets[%d]: %q must be lower snake case, at most %d bytes", ErrInvalidSpec, i, t, MaxTargetTypeLen)
		case slices.Contains(spec.Targets[:i], t):
			return fmt.Errorf("%w: targets[%d]: duplicate target type %q", ErrInvalidSpec, i, t)
		}
	}
	return nil
}

// Lookup returns a copy of the spec of the named action.
func (c *Catalog) Lookup(action string) (ActionSpec, bool) {
	spec, ok := c.lookup(action)
	if !ok {
		return ActionSpec{}, false
	}
	return spec.clone(), true
}

// lookup returns the stored spec without copying; callers must not modify
// it (stored specs are never modified after Register).
func (c *Catalog) lookup(action string) (ActionSpec, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	spec, ok := c.actions[action]
	return spec, ok
}

// HasCategory reports whether the category is registered.
func (c *Catalog) HasCategory(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.categories[name]
	return ok
}

// Actions returns copies of every registered action's spec, sorted by name.
func (c *Catalog) Actions() []ActionSpec {
	c.mu.RLock()
	out := make([]ActionSpec, 0, len(c.actions))
	for _, spec := range c.actions {
		out = append(out, spec.clone())
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b ActionSpec) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Categories returns the registered category names, sorted.
func (c *Catalog) Categories() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedKeys(c.categories)
}
