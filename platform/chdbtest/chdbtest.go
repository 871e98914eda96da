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
// uses, derived from the test's name, and drops that database when t ends
// (or later: Remover).
// It does not create it: eventstore.Store.Migrate does.
func Database(t testing.TB) string {
	t.Helper()
	s := Session(t)
	name := nonWord.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	db := fmt.Sprintf("t%d_%d_%s", os.Getpid(), dbSeq.Add(1), name)
	drop := func() {
		if _, err := s.Query(context.Background(), "DROP DATABASE IF EXISTS `"+db+"` SYNC", "TabSeparated"); err != nil {
			t.Errorf("chdbtest: drop %s: %v", db, err)
		}
	}
	if r, ok := t.(Remover); ok {
		t.Cleanup(func() { stopMerges(t, s, db) })
		r.RemoveLater(drop)
	} else {
		t.Cleanup(drop)
	}
	return db
}

// Remover is a testing.TB that removes what a test stored later than it
// runs the test's other cleanups: a benchmark running pipelines one after
// the other stops each before the next starts but removes their files
// only at its end. Removing a run's thousands of files just before the
// next run starts would make that run's file creations slower on a file
// system that holds recently freed inodes back (ext4 without a journal
// skips every inode freed in the last 30 to 60 seconds when it allocates
// one), and more so the more files a run creates. When t is a Remover,
// Database stops the merges of the database's tables when t ends and
// drops the database through RemoveLater.
type Remover interface {
	RemoveLater(f func())
}

// stopMerges stops the merges of db's tables: a database kept after its
// test ended does no more work.
func stopMerges(t testing.TB, s *chdb.Session, db string) {
	out, err := s.Query(context.Background(), "SELECT name FROM system.tables WHERE database = '"+db+"' AND engine LIKE '%MergeTree'", "TabSeparated")
	if err != nil {
		t.Errorf("chdbtest: tables of %s: %v", db, err)
		return
	}
	for _, table := range strings.Fields(string(out)) {
		if _, err := s.Query(context.Background(), "SYSTEM STOP MERGES `"+db+"`.`"+table+"`", "TabSeparated"); err != nil {
			t.Errorf("chdbtest: stop merges of %s.%s: %v", db, table, err)
		}
	}
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
