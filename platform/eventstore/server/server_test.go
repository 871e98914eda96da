package server_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/server"
	"github.com/takumo/audit/platform/eventstore/storetest"
)

// urlEnv names the server the contract runs against, e.g.
// clickhouse://default:@127.0.0.1:9000/default (ClickHouse 25.8 or newer).
const urlEnv = "AUDIT_TEST_CLICKHOUSE_URL"

var (
	dbSeq   atomic.Int64
	nonWord = regexp.MustCompile(`[^A-Za-z0-9_]+`)
)

func TestContract(t *testing.T) {
	url := os.Getenv(urlEnv)
	if url == "" {
		t.Skip("set " + urlEnv + "=clickhouse://user:pass@host:9000/default to run the store contract against a ClickHouse server")
	}
	run := time.Now().Unix()
	var dbOf sync.Map // *testing.T -> database
	storetest.Run(t, func(t *testing.T, cfg eventstore.Config) *eventstore.Store {
		name := nonWord.ReplaceAllString(t.Name(), "_")
		if len(name) > 40 {
			name = name[len(name)-40:]
		}
		v, loaded := dbOf.LoadOrStore(t, fmt.Sprintf("audit_test_%d_%d_%s", run, dbSeq.Add(1), name))
		db := v.(string)
		ctx := context.Background()
		eng, err := server.Open(ctx, server.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Database = db
		s, err := eventstore.New(eng, cfg)
		if err != nil {
			eng.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if !loaded {
			t.Cleanup(func() {
				dbOf.Delete(t)
				eng, err := server.Open(ctx, server.Config{URL: url})
				if err != nil {
					t.Errorf("drop %s: %v", db, err)
					return
				}
				defer eng.Close()
				if err := eng.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"` SYNC"); err != nil {
					t.Errorf("drop %s: %v", db, err)
				}
			})
		}
		return s
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := server.Open(ctx, server.Config{}); err == nil {
		t.Error("Open with no URL gave no error")
	}
	if _, err := server.Open(ctx, server.Config{URL: "clickhouse://127.0.0.1:1/x", DialTimeout: time.Second}); err == nil {
		t.Error("Open of a closed port gave no error")
	}
}
