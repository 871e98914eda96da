package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// CatalogFile is the JSON form of a catalog file: the categories and
// actions a host application adds to the built-in catalog without Go
// code. Categories an action uses must be built in or listed here.
//
//	{
//	  "categories": ["deployment"],
//	  "actions": [
//	    {"name": "deployment.started", "category": "deployment",
//	     "description": "A deployment started",
//	     "details": [{"name": "environment", "type": "string", "required": true,
//	                  "enum": ["staging", "production"]}],
//	     "targets": ["service"]}
//	  ]
//	}
type CatalogFile struct {
	Categories []string     `json:"categories,omitempty"`
	Actions    []ActionSpec `json:"actions"`
}

// CatalogFileError is a problem in a catalog file, with the file name and
// the line it is on (1-based; 0 when the file as a whole is at fault).
type CatalogFileError struct {
	File string
	Line int
	Err  error
}

func (e *CatalogFileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *CatalogFileError) Unwrap() error { return e.Err }

// ReadCatalogFile returns the built-in catalog extended with the
// categories and actions of the JSON catalog file at path. Any problem —
// invalid JSON, an unknown field, a malformed or duplicate action, an
// unknown category — is a *CatalogFileError naming the file and line.
func ReadCatalogFile(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &CatalogFileError{File: path, Err: err}
	}
	c := NewCatalog()
	if err := c.LoadFile(path, b); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadFile registers the categories and actions of a JSON catalog file's
// content data (name is the file name errors carry). Categories are
// registered before actions, whatever their order in the file. On error
// nothing of the file's actions after the faulty one is registered; use a
// fresh catalog per file.
func (c *Catalog) LoadFile(name string, data []byte) error {
	lineAt := func(off int64) int {
		off = min(off, int64(len(data)))
		// Skip the separator and blanks before a value, so the line is the
		// value's own.
		for off < int64(len(data)) && strings.ContainsRune(" \t\r\n,:[", rune(data[off])) {
			off++
		}
		return bytes.Count(data[:off], []byte("\n")) + 1
	}
	fail := func(off int64, format string, a ...any) error {
		return &CatalogFileError{File: name, Line: lineAt(off), Err: fmt.Errorf(format, a...)}
	}
	syntax := func(err error, base int64) error {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return &CatalogFileError{File: name, Line: bytes.Count(data[:min(se.Offset, int64(len(data)))], []byte("\n")) + 1, Err: fmt.Errorf("invalid JSON: %v", err)}
		case errors.As(err, &te):
			return &CatalogFileError{File: name, Line: bytes.Count(data[:min(te.Offset, int64(len(data)))], []byte("\n")) + 1,
				Err: fmt.Errorf("%s: want a JSON %s, got %s", te.Field, te.Type.Kind(), te.Value)}
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return &CatalogFileError{File: name, Line: bytes.Count(data, []byte("\n")) + 1, Err: errors.New("unexpected end of the file")}
		}
		return &CatalogFileError{File: name, Line: lineAt(base), Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return syntax(err, 0)
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fail(0, "the file must hold one JSON object with \"categories\" and \"actions\"")
	}
	type located struct {
		spec ActionSpec
		off  int64
	}
	var (
		cats    []string
		catOffs []int64
		actions []located
	)
	for dec.More() {
		keyOff := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return syntax(err, keyOff)
		}
		switch tok {
		case "categories":
			off := dec.InputOffset()
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return syntax(err, off)
			}
			if err := json.Unmarshal(raw, &cats); err != nil {
				return fail(off, "categories: want an array of names")
			}
			catOffs = append(catOffs, off)
		case "actions":
			off := dec.InputOffset()
			if tok, err := dec.Token(); err != nil {
				return syntax(err, off)
			} else if d, ok := tok.(json.Delim); !ok || d != '[' {
				return fail(off, "actions: want an array of actions")
			}
			for dec.More() {
				aoff := dec.InputOffset()
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return syntax(err, aoff)
				}
				var spec ActionSpec
				ad := json.NewDecoder(bytes.NewReader(raw))
				ad.DisallowUnknownFields()
				if err := ad.Decode(&spec); err != nil {
					if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
						return fail(aoff, "action %d: unknown field %s", len(actions), f)
					}
					var te *json.UnmarshalTypeError
					if errors.As(err, &te) {
						return fail(aoff, "action %d: %s: want a JSON %s, got %s", len(actions), te.Field, te.Type.Kind(), te.Value)
					}
					return fail(aoff, "action %d: %v", len(actions), err)
				}
				actions = append(actions, located{spec, aoff})
			}
			if _, err := dec.Token(); err != nil {
				return syntax(err, dec.InputOffset())
			}
		default:
			return fail(keyOff, "unknown field %v (want \"categories\" and \"actions\")", tok)
		}
	}
	if _, err := dec.Token(); err != nil {
		return syntax(err, dec.InputOffset())
	}
	if dec.More() {
		return fail(dec.InputOffset(), "content after the catalog object")
	}
	for _, cat := range cats {
		if err := c.RegisterCategory(cat); err != nil {
			return fail(catOffs[0], "%v", err)
		}
	}
	for _, a := range actions {
		if a.spec.Description == "" {
			return fail(a.off, "action %q: a description is required", a.spec.Name)
		}
		if err := c.Register(a.spec); err != nil {
			return fail(a.off, "%v", err)
		}
	}
	if len(actions) == 0 {
		return fail(0, "no actions")
	}
	return nil
}

// CatalogDocTitle and CatalogDocIntro head docs/actions.md, the built-in
// catalog as Markdown (`auditd actions-doc` prints the same document, with
// a catalog file's actions added when one is configured).
const (
	CatalogDocTitle = "Action catalog"
	CatalogDocIntro = "The built-in actions of the v1 envelope, generated from `schemas.NewCatalog()` " +
		"(`cd schemas && go test -run TestActionsDoc -update-docs`). Host applications add their own " +
		"with `Catalog.Register` in Go, or without Go in a catalog file (`AUDIT_CATALOG_FILE`, see the README); " +
		"`auditd actions-doc` writes this document for the built-in and the file's actions together. " +
		"Details marked *required* must be present; other keys are allowed within the published limits."
)

// Markdown renders the catalog as a Markdown document: a title, the intro
// paragraph, then one table per category listing each action, its
// description, its details (type, enum, required) and, when restricted,
// its target types.
func (c *Catalog) Markdown(title, intro string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s\n", title, intro)
	cat := ""
	actions := c.Actions()
	// Group by category, then by name.
	sorted := make([]ActionSpec, 0, len(actions))
	for _, category := range c.Categories() {
		for _, a := range actions {
			if a.Category == category {
				sorted = append(sorted, a)
			}
		}
	}
	for _, a := range sorted {
		if a.Category != cat {
			cat = a.Category
			fmt.Fprintf(&b, "\n## %s\n\n| action | description | details |\n|---|---|---|\n", cat)
		}
		var fields []string
		for _, f := range a.Details {
			s := fmt.Sprintf("`%s` %s", f.Name, f.Type)
			if len(f.Enum) > 0 {
				s += " (" + strings.Join(f.Enum, ", ") + ")"
			}
			if f.Required {
				s += " *required*"
			}
			fields = append(fields, s)
		}
		if len(fields) == 0 {
			fields = []string{"—"}
		}
		if len(a.Targets) > 0 {
			fields = append(fields, "targets: `"+strings.Join(a.Targets, "`, `")+"`")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", a.Name, strings.ReplaceAll(a.Description, "|", "\\|"), strings.Join(fields, "<br>"))
	}
	return b.String()
}
