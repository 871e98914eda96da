package chdbtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/takumo/audit/platform/chdbtest"
)

func TestMain(m *testing.M) { chdbtest.Main(m) }

func exists(t *testing.T, db string) bool {
	t.Helper()
	out, err := chdbtest.Session(t).Query(context.Background(), "SELECT count() FROM system.databases WHERE name = '"+db+"'", "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out)) == "1"
}

// Each test gets a database of its own, migrated by StoreOn and dropped
// when the test ends.
func TestDatabasePerTest(t *testing.T) {
	var a, b string
	t.Run("first", func(t *testing.T) {
		a = chdbtest.Database(t)
		chdbtest.StoreOn(t, a)
		if !exists(t, a) {
			t.Fatalf("database %s not created", a)
		}
	})
	t.Run("second", func(t *testing.T) {
		b = chdbtest.Database(t)
		chdbtest.Store(t)
	})
	if a == b {
		t.Fatalf("two tests share database %s", a)
	}
	if exists(t, a) {
		t.Errorf("database %s outlived its test", a)
	}
}
