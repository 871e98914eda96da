package ingestor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// The package's tests share one embedded ClickHouse session.
func TestMain(m *testing.M) { chdbtest.Main(m) }

// A copy of a stored event with other content, published under a fresh
// message id (past the stream's duplicate detection), is refused by the
// real store and ends in the dead-letter stream with reason
// conflicting_duplicate, logged and counted; the original stays, the rest
// of the batch is stored, and an identical copy is dropped quietly.
func TestConflictingCopyIsDeadLetteredAndTheOriginalKept(t *testing.T) {
	store := chdbtest.Store(t)
	ctx := context.Background()

	e := startNATS(t, 30*time.Second)
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.WarnLevel)
	ing, err := ingestor.New(ingestor.Config{BatchSize: 100, BatchWait: 100 * time.Millisecond, RetryInitial: 10 * time.Millisecond},
		e.js, store, fixedRetention(30), ingestor.WithRegisterer(reg), ingestor.WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ing.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	orig := event("org_fw", 0)
	publish(t, e.js, orig)
	waitFor(t, "the original stored", 30*time.Second, func() bool {
		n, err := store.Count(ctx, "org_fw")
		return err == nil && n == 1
	})

	forged := orig
	forged.Actor.ID = "usr_mallory"
	forged.Details = map[string]any{"method": "sso"}
	forged.OccurredAt = orig.OccurredAt.Add(-48 * time.Hour)
	forgedBody, err := schemas.Canonical(forged)
	if err != nil {
		t.Fatal(err)
	}
	origBody, _ := schemas.Canonical(orig)
	filler := event("org_fw", 1)
	for _, m := range []struct {
		ev    schemas.Event
		body  []byte
		msgID string
	}{
		{forged, forgedBody, orig.ID + "-forged"},
		{filler, nil, filler.ID},
		{orig, origBody, orig.ID + "-again"}, // identical: dropped, not dead-lettered
	} {
		body := m.body
		if body == nil {
			body, _ = schemas.Canonical(m.ev)
		}
		if _, err := e.js.Publish(ctx, schemas.Subject(m.ev.OrgID, m.ev.Action), body, jetstream.WithMsgID(m.msgID)); err != nil {
			t.Fatal(err)
		}
	}

	dl, err := e.js.Stream(ctx, topology.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the forged copy dead-lettered", 30*time.Second, func() bool {
		info, err := dl.Info(ctx)
		return err == nil && info.State.Msgs >= 1
	})
	waitFor(t, "everything acknowledged", 30*time.Second, func() bool {
		info := consumerInfo(t, e.js)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	if info, _ := dl.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("%d dead letters, want only the forged copy", info.State.Msgs)
	}
	m, err := dl.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Header.Get(topology.HeaderDLReason); !strings.HasPrefix(r, eventstore.ReasonConflictingDuplicate+":") {
		t.Fatalf("dead-letter reason %q, want conflicting_duplicate", r)
	}
	if string(m.Data) != string(forgedBody) {
		t.Fatalf("dead letter holds %q, want the forged copy", m.Data)
	}

	if n, err := store.Count(ctx, "org_fw"); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want the original and the filler", n, err)
	}
	raw, err := store.GetRaw(ctx, "org_fw", orig.ID)
	if err != nil || string(raw) != string(origBody) {
		t.Fatalf("GetRaw = %q, %v; want the original", raw, err)
	}
	if got := deadLettered(t, reg, eventstore.ReasonConflictingDuplicate); got != 1 {
		t.Fatalf("audit_ingest_dead_lettered_total{reason=%q} = %v, want 1", eventstore.ReasonConflictingDuplicate, got)
	}
	logged := logs.FilterMessage("message dead-lettered").FilterField(zap.String("reason", m.Header.Get(topology.HeaderDLReason)))
	if logged.Len() != 1 {
		t.Fatalf("dead letter logged %d times, want once; logs: %v", logged.Len(), logs.All())
	}
}

// deadLettered returns audit_ingest_dead_lettered_total for the reason.
func deadLettered(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "audit_ingest_dead_lettered_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
