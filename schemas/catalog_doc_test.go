package schemas

import (
	"flag"
	"os"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite ../docs/actions.md from the catalog")

func TestActionsDocMatchesCatalog(t *testing.T) {
	const path = "../docs/actions.md"
	want := NewCatalog().Markdown(CatalogDocTitle, CatalogDocIntro)
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
