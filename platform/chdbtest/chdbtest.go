package chdbtest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
)

var (
	session *chdb.Session
	dbSeq   atomic.Int64
)

// Main opens the session in a temporary data directory, runs the tests,
// closes the session, removes the directory and exits with the tests'
// status. Call it from TestMain.
func Main(m *testing.M) { os.Exit(run(m, "")) }

// MainIn is Main on the data directory dir, created if needed and kept
// afterwards (large benchmarks reuse their data). An empty dir is Main.
func MainIn(m *testing.M, dir string) { os.Exit(run(m, dir)) }

func run(m *testing.M, dir string) int {
	keep := dir != ""
	var err error
	if keep {
		err = os.MkdirAll(dir, 0o750)
	} else {
		dir, err = os.MkdirTemp("", "audit-chdbtest-")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chdbtest:", err)
		return 1
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	session, err = chdb.Open(chdb.DefaultLibPath(), dir)
	if err != nil {
		msg := err.Error()
		if !strings.Contains(msg, "make chdb") {
			msg += "; " + chdb.FetchHint
		}
		fmt.Fprintln(os.Stderr, "chdbtest: the embedded ClickHouse engine cannot start:", msg)
		return 1
	}
	defer session.Close()
	return m.Run()
}

// Session returns the process's session. It fails t when TestMain did not
// call Main.
func Session(t testing.TB) *chdb.Session {
	t.Helper()
	if session == nil {
		t.Fatal("chdbtest: no engine session; call chdbtest.Main(m) from TestMain")
	}
	return session
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// Database returns the name of a database no other test of the process
// uses, derived from the test's name, and drops that database when t ends.
// It does not create it: eventstore.Store.Migrate does.
func Database(t testing.TB) string {
	t.Helper()
	s := Session(t)
	name := nonWord.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	db := fmt.Sprintf("t%d_%d_%s", os.Getpid(), dbSeq.Add(1), name)
	t.Cleanup(func() {
		if _, err := s.Query(context.Background(), "DROP DATABASE IF EXISTS `"+db+"` SYNC", "TabSeparated"); err != nil {
			t.Errorf("chdbtest: drop %s: %v", db, err)
		}
	})
	return db
}

// Store returns a migrated Store on a fresh database (Database), closed and
// dropped when t ends.
func Store(t testing.TB) *eventstore.Store {
	t.Helper()
	return StoreOn(t, Database(t))
}

// StoreOn returns a migrated Store on database db with the default engine
// options, closed when t ends; it does not drop db.
func StoreOn(t testing.TB, db string) *eventstore.Store {
	t.Helper()
	s, err := eventstore.New(embedded.New(Session(t), embedded.Options{}), eventstore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}
