package embedded_test

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/eventstore/storetest"
)

// The tests share one engine session and isolate themselves by database
// name. A missing library fails them (it never skips them): the message
// names the fix.
func TestMain(m *testing.M) { chdbtest.Main(m) }

var dbSeq atomic.Int64

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// dbOf maps each test to its database, so a second Store a test opens
// shares the first one's tables.
var dbOf sync.Map // *testing.T -> string

// openStore returns a Store with cfg on the database of t, fresh and named
// after the test on the first call.
func openStore(t *testing.T, opts embedded.Options, cfg eventstore.Config) *eventstore.Store {
	t.Helper()
	name := nonWord.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	db, loaded := dbOf.LoadOrStore(t, fmt.Sprintf("t%d_%s", dbSeq.Add(1), name))
	eng := embedded.New(chdbtest.Session(t), opts)
	cfg.Database = db.(string)
	s, err := eventstore.New(eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if !loaded {
		t.Cleanup(func() {
			dbOf.Delete(t)
			if err := eng.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+cfg.Database+"` SYNC"); err != nil {
				t.Errorf("drop %s: %v", cfg.Database, err)
			}
		})
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg eventstore.Config) *eventstore.Store {
		return openStore(t, embedded.Options{}, cfg)
	})
}

// The temporary-file insert path is not the default; it must still meet the
// write-side contract.
func TestContractFileInsert(t *testing.T) {
	storetest.RunWritePath(t, func(t *testing.T, cfg eventstore.Config) *eventstore.Store {
		return openStore(t, embedded.Options{Path: embedded.InsertFile, TempDir: t.TempDir()}, cfg)
	})
}
