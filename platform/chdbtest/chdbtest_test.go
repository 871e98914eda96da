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

// remover is a testing.TB whose cleanups run when end is called and whose
// removals run when the test ends, as the e2e benchmarks' runs do.
type remover struct {
	testing.TB
	cleanups []func()
}

func (r *remover) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *remover) RemoveLater(f func()) { r.TB.Cleanup(f) }

func (r *remover) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// Under a Remover the database outlives the cleanups, with its merges
// stopped, and is dropped with the removals.
func TestRemoverKeepsTheDatabaseUntilTheEnd(t *testing.T) {
	var db string
	t.Run("run", func(t *testing.T) {
		r := &remover{TB: t}
		db = chdbtest.Database(r)
		chdbtest.StoreOn(r, db)
		r.end()
		if !exists(t, db) {
			t.Fatalf("database %s removed with the run's cleanups", db)
		}
		ses := chdbtest.Session(t)
		table := "`" + db + "`.tlog_subject_salts"
		for _, s := range []string{"a", "b"} {
			if _, err := ses.Query(context.Background(), "INSERT INTO "+table+" (org_id, subject, salt, created_at) VALUES ('org', '"+s+"', unhex(repeat('00', 32)), now64(3))", "TabSeparated"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ses.Query(context.Background(), "OPTIMIZE TABLE "+table+" FINAL", "TabSeparated"); err == nil {
			t.Error("a kept database's table merged its parts: its merges were not stopped")
		}
	})
	if exists(t, db) {
		t.Errorf("database %s outlived the test", db)
	}
}
