package ingestor_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
)

// An ingest consumer whose MaxAckPending cannot hold two batches (the one
// stored and the next filling) is named at start-up, with the setting to
// raise; one that can is not.
func TestWarnsWhenMaxAckPendingCapsBatches(t *testing.T) {
	_, _, js := natstest.StartWithTopology(t, topology.Config{IngestAckWait: 30 * time.Second, IngestMaxAckPending: 100})
	for _, tc := range []struct {
		batch int
		warn  bool
	}{{batch: 80, warn: true}, {batch: 50, warn: false}} {
		core, logs := observer.New(zap.InfoLevel)
		ing, err := ingestor.New(ingestor.Config{BatchSize: tc.batch, BatchWait: 50 * time.Millisecond}, js, newMemStore(), fixedRetention(30),
			ingestor.WithLogger(zap.New(core)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ing.Run(ctx) }()
		waitFor(t, "the ingestor to start", 10*time.Second, func() bool {
			return logs.FilterMessage("ingestor started").Len() == 1
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := logs.FilterMessageSnippet("AUDIT_INGEST_MAX_ACK_PENDING").All()
		if tc.warn && (len(got) != 1 || got[0].ContextMap()["max_ack_pending"] != int64(100) || got[0].ContextMap()["batch_size"] != int64(tc.batch)) {
			t.Errorf("batch %d against MaxAckPending 100: warnings %v", tc.batch, logs.All())
		}
		if !tc.warn && len(got) != 0 {
			t.Errorf("batch %d against MaxAckPending 100: unexpected warning %v", tc.batch, got)
		}
	}
}
