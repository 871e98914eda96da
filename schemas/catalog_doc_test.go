package schemas

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite ../docs/actions.md from the catalog")

// renderCatalog writes the built-in catalog as Markdown.
func renderCatalog(c *Catalog) string {
	var b strings.Builder
	b.WriteString("# Action catalog\n\n")
	b.WriteString("The built-in actions of the v1 envelope, generated from `schemas.NewCatalog()` " +
		"(`cd schemas && go test -run TestActionsDoc -update-docs`). Host applications add their own " +
		"with `Catalog.Register`. Details marked *required* must be present; other keys are allowed " +
		"within the published limits.\n")
	cat := ""
	for _, a := range c.Actions() {
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
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", a.Name, a.Description, strings.Join(fields, "<br>"))
	}
	return b.String()
}

func TestActionsDocMatchesCatalog(t *testing.T) {
	const path = "../docs/actions.md"
	want := renderCatalog(NewCatalog())
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with -update-docs)", err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date: run `cd schemas && go test -run TestActionsDoc -update-docs`", path)
	}
}
