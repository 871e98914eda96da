package embedded_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
)

// parseOnly hands every statement to the engine as EXPLAIN AST, so the
// engine's parser checks it without running it, and records it.
type parseOnly struct {
	inner *embedded.Engine
	mu    sync.Mutex
	stmts []string
}

func (p *parseOnly) Exec(ctx context.Context, q string, ps ...eventstore.Param) error {
	p.mu.Lock()
	p.stmts = append(p.stmts, q)
	p.mu.Unlock()
	return p.inner.Exec(ctx, "EXPLAIN AST "+q, ps...)
}

func (p *parseOnly) Query(ctx context.Context, q string, ps ...eventstore.Param) (eventstore.Rows, error) {
	if err := p.Exec(ctx, q, ps...); err != nil {
		return nil, err
	}
	return emptyRows{}, nil
}

func (p *parseOnly) Insert(context.Context, eventstore.Batch) error { return nil }

type emptyRows struct{}

func (emptyRows) Next() bool        { return false }
func (emptyRows) Scan(...any) error { return nil }
func (emptyRows) Err() error        { return nil }
func (emptyRows) Close() error      { return nil }

// The cluster layout cannot run on the embedded engine (no ZooKeeper, no
// remote shards), but every statement it issues must parse, and target the
// replicated table where it mutates.
func TestClusterStatementsParse(t *testing.T) {
	eng := &parseOnly{inner: embedded.New(chdbtest.Session(t), embedded.Options{})}
	s, err := eventstore.New(eng, eventstore.Config{Database: "audit", Cluster: "audit_cluster"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []func() error{
		func() error { return s.Migrate(ctx) },
		func() error { return s.SetRetention(ctx, "org_1", 365) },
		func() error { return s.Purge(ctx, "org_1") },
		func() error { return s.Optimize(ctx) },
		func() error { return s.SetTTLMerges(ctx, false) },
		func() error { _, err := s.Recent(ctx, "org_1", 10); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	all := strings.Join(eng.stmts, "\n")
	for _, want := range []string{
		"CREATE DATABASE IF NOT EXISTS `audit` ON CLUSTER `audit_cluster`",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')",
		"ENGINE = Distributed('audit_cluster', audit, events_local, cityHash64(org_id))",
		"ALTER TABLE `audit`.events_local ON CLUSTER `audit_cluster` UPDATE",
		"OPTIMIZE TABLE `audit`.events_local ON CLUSTER `audit_cluster` FINAL",
		"FROM `audit`.events FINAL",
		"ALTER TABLE `audit`.events_local ON CLUSTER `audit_cluster` ADD COLUMN IF NOT EXISTS hold_until",
		"ALTER TABLE `audit`.events_local ON CLUSTER `audit_cluster` MODIFY TTL",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_by_id_local', '{replica}')",
		"TO `audit`.events_by_id_local AS SELECT",
		"ENGINE = Distributed('audit_cluster', audit, retention_changes_local, cityHash64(org_id))",
		"ALTER TABLE `audit`.events_by_id_local ON CLUSTER `audit_cluster` UPDATE",
		"ALTER TABLE `audit`.events_local ON CLUSTER `audit_cluster` DELETE",
		"ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/tlog_runs_local', '{replica}')",
		"ENGINE = Distributed('audit_cluster', audit, tlog_runs_local, cityHash64(org_id))",
		"DROP VIEW IF EXISTS `audit`.tlog_leaves_by_event_mv ON CLUSTER `audit_cluster`",
		"TO `audit`.tlog_leaves_by_event_local AS SELECT org_id, event_id, first_idx + pos - 1 AS idx FROM `audit`.tlog_runs_local ARRAY JOIN",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no statement contains %q", want)
		}
	}
	if t.Failed() {
		t.Log(all)
	}
}
