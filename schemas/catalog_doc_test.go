package schemas

import (
	"flag"
	"os"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite ../docs/actions.md from the catalog")

// builtinIntro is the introduction of docs/actions.md.
const builtinIntro = "The built-in actions of the v1 envelope, generated from `schemas.NewCatalog()` " +
	"(`cd schemas && go test -run TestActionsDoc -update-docs`). Host applications add their own " +
	"with `Catalog.Register` in Go, or without Go in a catalog file (`AUDIT_CATALOG_FILE`, see the README); " +
	"`auditd actions-doc` writes this document for the built-in and the file's actions together. " +
	"Details marked *required* must be present; other keys are allowed within the published limits."

func TestActionsDocMatchesCatalog(t *testing.T) {
	const path = "../docs/actions.md"
	want := NewCatalog().Markdown("Action catalog", builtinIntro)
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
