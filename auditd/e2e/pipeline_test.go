package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

var orgs = []string{"org_alpha", "org_beta", "org_gamma"}

// events returns n valid events spread over the three orgs, with ids.
func events(n int) []schemas.Event {
	g := demo.NewGenerator(7)
	out := make([]schemas.Event, n)
	for i := range out {
		ev := g.Next()
		ev.OrgID = orgs[i%len(orgs)]
		ev.ID = schemas.NewID()
		ev.OccurredAt = time.Now().UTC().Truncate(time.Millisecond)
		out[i] = ev
	}
	return out
}

func TestEndToEndExactlyTheValidEventsOnceEach(t *testing.T) {
	p := newPipeline(t, 30*time.Second)
	store := newStore(t)
	p.startIngestor(t, store, ingestor.Config{BatchSize: 5000, BatchWait: 100 * time.Millisecond})
	prod, err := producer.New(p.js)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	const n = 20_000
	evs := events(n)
	want := map[string]uint64{}
	for _, ev := range evs {
		if _, err := prod.EmitAsync(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want[ev.OrgID]++
	}
	// Published twice on purpose: 500 retried through the producer (the
	// stream's duplicate window drops them) ...
	for _, ev := range evs[:500] {
		r, err := prod.Emit(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Duplicate {
			t.Fatalf("retry of %s stored again at seq %d", ev.ID, r.Seq)
		}
	}
	// ... and 300 republished raw under a different message id, so they
	// reach the ingestor a second time and the store must deduplicate.
	for _, ev := range evs[1000:1300] {
		b, _ := schemas.Canonical(ev)
		if _, err := p.js.Publish(ctx, schemas.Subject(ev.OrgID, ev.Action), b, jetstream.WithMsgID("again-"+ev.ID)); err != nil {
			t.Fatal(err)
		}
	}
	// Invalid ones published raw, past the producer's validation.
	invalid := map[string]string{
		"not json":       "{",
		"unknown action": strings.Replace(string(must(schemas.Canonical(evs[0]))), evs[0].Action, "thing.exploded", 1),
		"wrong org id":   strings.Replace(string(must(schemas.Canonical(evs[1]))), `"org_id":"org_beta"`, `"org_id":"org beta"`, 1),
		"too large":      `{"id":"` + strings.Repeat("x", 40_000) + `"}`,
		"missing actor":  `{"id":"01JBZ0000000000000000000AB","org_id":"org_alpha","action":"auth.login","category":"auth","occurred_at":"2026-01-01T00:00:00.000Z","outcome":"success","targets":[],"details":{"method":"sso"},"context":{}}`,
	}
	for _, body := range invalid {
		if _, err := p.js.Publish(ctx, "audit.events.org_alpha.auth.login", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Close(ctx); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "20,000 events in ClickHouse", 2*time.Minute, func() bool {
		var total uint64
		for _, o := range orgs {
			total += count(t, store, o)
		}
		return total >= n
	})
	waitFor(t, "the consumer to drain", 30*time.Second, func() bool {
		c := p.consumer(t)
		return c.NumPending == 0 && c.NumAckPending == 0
	})
	for _, o := range orgs {
		if got := count(t, store, o); got != want[o] {
			t.Errorf("%s: %d events in ClickHouse, want %d", o, got, want[o])
		}
	}
	// Every one, spot-checked by id, reads back as emitted.
	for _, ev := range []schemas.Event{evs[0], evs[1000], evs[n-1]} {
		got, err := store.Get(ctx, ev.OrgID, ev.ID)
		if err != nil {
			t.Fatalf("get %s: %v", ev.ID, err)
		}
		if got.Action != ev.Action || got.Actor.ID != ev.Actor.ID || got.ReceivedAt == nil {
			t.Errorf("read back %+v, emitted %+v", got, ev)
		}
	}

	dl, err := p.js.Stream(ctx, topology.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := dl.Info(ctx)
	if info.State.Msgs != uint64(len(invalid)) {
		t.Fatalf("dead-letter stream holds %d, want %d", info.State.Msgs, len(invalid))
	}
	for seq := uint64(1); seq <= info.State.Msgs; seq++ {
		m, err := dl.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if r := m.Header.Get(topology.HeaderDLReason); r == "" {
			t.Errorf("dead letter %d has no reason", seq)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// crashingStore inserts into the real store, then never returns: the
// ingestor that called it has stored the batch but will never ack it.
type crashingStore struct {
	*eventstore.Store
	after   int
	inserts atomic.Int64
	hang    chan struct{}
}

func (s *crashingStore) Insert(ctx context.Context, rows []eventstore.Row) error {
	if err := s.Store.Insert(ctx, rows); err != nil {
		return err
	}
	if s.inserts.Add(1) >= int64(s.after) {
		<-s.hang
		return errors.New("crashed")
	}
	return nil
}

func TestCrashMidStreamLosesNothingDuplicatesNothing(t *testing.T) {
	p := newPipeline(t, 2*time.Second)
	store := newStore(t)
	crashing := &crashingStore{Store: store, after: 3, hang: make(chan struct{})}
	defer close(crashing.hang)
	_, kill := p.startIngestor(t, crashing, ingestor.Config{BatchSize: 500, BatchWait: 50 * time.Millisecond})

	prod, _ := producer.New(p.js)
	ctx := context.Background()
	const n = 5000
	for _, ev := range events(n) {
		if _, err := prod.EmitAsync(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the third batch stored", 30*time.Second, func() bool { return crashing.inserts.Load() >= 3 })
	kill() // no flush, no ack for the batch in hand or the messages buffered

	p.startIngestor(t, store, ingestor.Config{BatchSize: 500, BatchWait: 50 * time.Millisecond})
	waitFor(t, "every event after the restart", time.Minute, func() bool {
		c := p.consumer(t)
		return c.NumPending == 0 && c.NumAckPending == 0
	})
	var total uint64
	for _, o := range orgs {
		total += count(t, store, o)
	}
	if total != n {
		t.Fatalf("%d events readable after the crash, want exactly %d", total, n)
	}
	// The unacknowledged batch really was stored twice: reads still show it once.
	var stored uint64
	for _, o := range orgs {
		c, err := store.CountStored(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		stored += c
	}
	t.Logf("rows physically stored: %d (reads: %d)", stored, total)
}

// flakyStore fails every insert until healed.
type flakyStore struct {
	*eventstore.Store
	down     atomic.Bool
	failures atomic.Int64
	// logged counts the refused inserts whose events the sequencer had
	// logged (InsertSequenced).
	logged atomic.Int64
}

var errRefused = errors.New("clickhouse: connection refused")

func (s *flakyStore) Insert(ctx context.Context, rows []eventstore.Row) error {
	if s.down.Load() {
		s.failures.Add(1)
		return errRefused
	}
	return s.Store.Insert(ctx, rows)
}

// InsertSequenced, while the store is down, fails as a connection lost
// at any moment of a sealed batch does: every other call is refused before
// anything is written, the others once the sequencer has logged the
// batch's new events (their leaves stored) and before the events are.
func (s *flakyStore) InsertSequenced(ctx context.Context, rows []eventstore.Row, seq eventstore.Sequencer) error {
	if !s.down.Load() {
		return s.Store.InsertSequenced(ctx, rows, seq)
	}
	if s.failures.Add(1)%2 == 1 || seq == nil {
		return errRefused
	}
	err := s.Store.InsertSequenced(ctx, rows, func(ctx context.Context, first []int) ([]uint64, error) {
		if _, err := seq(ctx, first); err != nil {
			return nil, err
		}
		s.logged.Add(1)
		return nil, errRefused
	})
	if err == nil {
		// Every row was a copy of a stored event: nothing to log.
		return errRefused
	}
	return err
}

func TestStoreOutageBackOffAckNothingThenCatchUp(t *testing.T) {
	p := newPipeline(t, 2*time.Second)
	store := &flakyStore{Store: newStore(t)}
	store.down.Store(true)
	p.startIngestor(t, store, ingestor.Config{BatchSize: 1000, BatchWait: 50 * time.Millisecond, RetryInitial: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})

	prod, _ := producer.New(p.js)
	ctx := context.Background()
	const n = 3000
	for _, ev := range events(n) {
		if _, err := prod.EmitAsync(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Down for longer than the ack wait.
	waitFor(t, "failed inserts", 10*time.Second, func() bool { return store.failures.Load() >= 3 })
	time.Sleep(3 * time.Second)
	if c := p.consumer(t); c.AckFloor.Stream != 0 {
		t.Fatalf("acknowledged up to %d while the store was down", c.AckFloor.Stream)
	}
	failures := store.failures.Load()
	if failures > 40 {
		t.Fatalf("%d attempts in ~3.5 s: not backing off", failures)
	}
	store.down.Store(false)
	waitFor(t, "catch-up after the outage", time.Minute, func() bool {
		c := p.consumer(t)
		return c.NumPending == 0 && c.NumAckPending == 0
	})
	var total uint64
	for _, o := range orgs {
		total += count(t, store.Store, o)
	}
	if total != n {
		t.Fatalf("%d events after recovery, want %d", total, n)
	}
}

func TestRetentionFollowsTheOrgPlan(t *testing.T) {
	p := newPipeline(t, 30*time.Second)
	store := newStore(t)
	ctx := context.Background()
	if err := p.settings.Put(ctx, orgsettings.Settings{OrgID: "org_alpha", Plan: orgsettings.Free}); err != nil {
		t.Fatal(err)
	}
	p.startIngestor(t, store, ingestor.Config{BatchSize: 100, BatchWait: 50 * time.Millisecond})
	prod, _ := producer.New(p.js)
	for _, ev := range events(30) {
		if _, err := prod.Emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "events stored", 30*time.Second, func() bool { return count(t, store, "org_alpha") == 10 })
	days, err := store.RetentionDays(ctx, "org_alpha")
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 1 || days[0] != 7 {
		t.Fatalf("free org stored with retention %v, want [7]", days)
	}
	if d, _ := store.RetentionDays(ctx, "org_beta"); len(d) != 1 || d[0] != 30 {
		t.Fatalf("org without settings stored with retention %v, want the default plan's [30]", d)
	}
	// Upgrade to Enterprise: settings first, then the stored rows.
	up := orgsettings.Settings{OrgID: "org_alpha", Plan: orgsettings.Enterprise}
	if err := p.settings.Put(ctx, up); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRetention(ctx, "org_alpha", up.RetentionDays()); err != nil {
		t.Fatal(err)
	}
	if days, _ := store.RetentionDays(ctx, "org_alpha"); len(days) != 1 || days[0] != 365 {
		t.Fatalf("after the upgrade, retention %v, want [365]", days)
	}
}

func TestConcurrentProducersAcrossOrgs(t *testing.T) {
	p := newPipeline(t, 30*time.Second)
	store := newStore(t)
	p.startIngestor(t, store, ingestor.Config{BatchSize: 2000, BatchWait: 50 * time.Millisecond})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prod, _ := producer.New(p.js)
			defer prod.Close(ctx) //nolint:errcheck // checked through the counts
			for i := range 1000 {
				ev := producer.AuthLogin(orgs[w%3], producer.User(fmt.Sprintf("usr_%d", i), "", ""), "sso")
				if _, err := prod.EmitAsync(ctx, ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "4,000 events", time.Minute, func() bool {
		return count(t, store, orgs[0])+count(t, store, orgs[1])+count(t, store, orgs[2]) == 4000
	})
}
