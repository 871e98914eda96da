package ingestor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// memStore is a narrow in-memory Store: it records rows by event id and
// can be told to fail. The pipeline tests in auditd/e2e run the same
// scenarios against the real embedded ClickHouse engine.
type memStore struct {
	mu      sync.Mutex
	rows    map[string]eventstore.Row
	inserts int
	failing atomic.Bool
	calls   atomic.Int64
	block   chan struct{} // when set, Insert stores then blocks forever
}

func newMemStore() *memStore { return &memStore{rows: map[string]eventstore.Row{}} }

func (s *memStore) Insert(ctx context.Context, rows []eventstore.Row) error {
	s.calls.Add(1)
	if s.failing.Load() {
		return errors.New("store unavailable")
	}
	s.mu.Lock()
	for _, r := range rows {
		s.rows[r.Event.ID] = r
	}
	s.inserts++
	s.mu.Unlock()
	if s.block != nil {
		<-s.block
	}
	return ctx.Err()
}

func (s *memStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rows)
}

type fixedRetention int

func (f fixedRetention) RetentionDays(string) int { return int(f) }

type env struct {
	srv *natsembed.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(t *testing.T, ackWait time.Duration) *env {
	t.Helper()
	srv, nc, js := natstest.StartWithTopology(t, topology.Config{IngestAckWait: ackWait})
	return &env{srv: srv, nc: nc, js: js}
}

func event(org string, i int) schemas.Event {
	return schemas.Event{
		ID:         schemas.NewID(),
		OrgID:      org,
		Action:     "auth.login",
		Category:   "auth",
		OccurredAt: time.Now().UTC().Truncate(time.Millisecond),
		Actor:      schemas.Actor{Type: schemas.ActorUser, ID: fmt.Sprintf("usr_%d", i%7), Email: "a@example.com"},
		Outcome:    schemas.OutcomeSuccess,
		Details:    map[string]any{"method": "password"},
	}
}

// publish sends ev raw, as the producer would, with its org and id as the
// message id (producer.MsgID).
func publish(t *testing.T, js jetstream.JetStream, ev schemas.Event) {
	t.Helper()
	b, err := schemas.Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), schemas.Subject(ev.OrgID, ev.Action), b, jetstream.WithMsgID(ev.OrgID+"/"+ev.ID)); err != nil {
		t.Fatal(err)
	}
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte) {
	t.Helper()
	if _, err := js.Publish(context.Background(), subject, data); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, e *env, store ingestor.Store, cfg ingestor.Config) (stop func() error) {
	t.Helper()
	ing, err := ingestor.New(cfg, e.js, store, fixedRetention(30))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	var once sync.Once
	var res error
	stop = func() error {
		once.Do(func() {
			cancel()
			res = <-done
		})
		return res
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func consumerInfo(t *testing.T, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), topology.EventsStream, topology.IngestorConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestBatchesByTimeAndSize(t *testing.T) {
	e := startNATS(t, 30*time.Second)
	store := newMemStore()
	run(t, e, store, ingestor.Config{BatchSize: 100, BatchWait: 100 * time.Millisecond})

	for i := range 250 {
		publish(t, e.js, event("org_a", i))
	}
	waitFor(t, "250 events stored", 10*time.Second, func() bool { return store.count() == 250 })
	// Two full batches of 100 and a partial one released by the timer.
	store.mu.Lock()
	inserts := store.inserts
	store.mu.Unlock()
	if inserts < 3 {
		t.Fatalf("inserts = %d, want at least 3 (size-bound and time-bound batches)", inserts)
	}
	waitFor(t, "every message acknowledged", 5*time.Second, func() bool {
		info := consumerInfo(t, e.js)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	// Interest retention: acknowledged by the ingestor and copied into
	// the fan-out stream, the events leave AUDIT_EVENTS.
	s, _ := e.js.Stream(context.Background(), topology.EventsStream)
	waitFor(t, "an empty events stream", 5*time.Second, func() bool {
		info, _ := s.Info(context.Background())
		return info.State.Msgs == 0
	})
}

func TestRowsCarryStreamTimestampSequenceAndRetention(t *testing.T) {
	e := startNATS(t, 30*time.Second)
	store := newMemStore()
	run(t, e, store, ingestor.Config{BatchSize: 10, BatchWait: 50 * time.Millisecond})
	ev := event("org_r", 1)
	before := time.Now().Add(-time.Second)
	publish(t, e.js, ev)
	waitFor(t, "event stored", 5*time.Second, func() bool { return store.count() == 1 })
	store.mu.Lock()
	row := store.rows[ev.ID]
	store.mu.Unlock()
	if row.Event.ReceivedAt == nil || row.Event.ReceivedAt.Before(before) || row.Event.ReceivedAt.After(time.Now()) {
		t.Fatalf("received_at = %v, want the stream's timestamp", row.Event.ReceivedAt)
	}
	if row.StreamSeq != 1 || row.RetentionDays != 30 {
		t.Fatalf("stream_seq = %d, retention = %d; want 1 and 30", row.StreamSeq, row.RetentionDays)
	}
	want, _ := schemas.Canonical(ev)
	if string(row.Raw) != string(want) {
		t.Fatalf("raw bytes are not the canonical encoding:\n got %s\nwant %s", row.Raw, want)
	}
}

func TestInvalidMessagesAreDeadLetteredWithReason(t *testing.T) {
	e := startNATS(t, 30*time.Second)
	store := newMemStore()
	run(t, e, store, ingestor.Config{BatchSize: 50, BatchWait: 50 * time.Millisecond})

	good := event("org_a", 1)
	unknown := event("org_a", 2)
	unknown.Action = "nothing.happened"
	unknownBody, _ := jsonEncode(unknown)
	wrongSubject := event("org_b", 3)
	wrongBody, _ := schemas.Canonical(wrongSubject)

	cases := []struct {
		subject, body, reason string
	}{
		{"audit.events.org_a.auth.login", "{not json", "decode"},
		{"audit.events.org_a.auth.login", `{"id":"x"}`, "validate"},
		{"audit.events.org_a.nothing.happened", string(unknownBody), "validate"},
		{"audit.events.org_a.auth.login", string(wrongBody), "subject"},
		{"audit.events.org_a.auth.login", "", "decode"},
	}
	for _, c := range cases {
		publishRaw(t, e.js, c.subject, []byte(c.body))
	}
	publish(t, e.js, good)

	waitFor(t, "the valid event stored", 5*time.Second, func() bool { return store.count() == 1 })
	dl, err := e.js.Stream(context.Background(), topology.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dead letters", 5*time.Second, func() bool {
		info, _ := dl.Info(context.Background())
		return info.State.Msgs == uint64(len(cases))
	})
	for seq := uint64(1); seq <= uint64(len(cases)); seq++ {
		m, err := dl.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		c := cases[seq-1]
		reason := m.Header.Get(topology.HeaderDLReason)
		if len(reason) < len(c.reason) || reason[:len(c.reason)] != c.reason {
			t.Errorf("dead letter %d: reason %q, want it to start with %q", seq, reason, c.reason)
		}
		if string(m.Data) != c.body {
			t.Errorf("dead letter %d: body %q, want the original %q", seq, m.Data, c.body)
		}
		if m.Header.Get(topology.HeaderDLSubject) != c.subject || m.Header.Get(topology.HeaderDLConsumer) != topology.IngestorConsumer {
			t.Errorf("dead letter %d: headers %v", seq, m.Header)
		}
	}
	waitFor(t, "nothing pending", 5*time.Second, func() bool {
		info := consumerInfo(t, e.js)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
}

func TestStoreOutageBacksOffAcksNothingLosesNothing(t *testing.T) {
	e := startNATS(t, 2*time.Second)
	store := newMemStore()
	store.failing.Store(true)
	run(t, e, store, ingestor.Config{
		BatchSize: 100, BatchWait: 50 * time.Millisecond, AckWait: 2 * time.Second,
		RetryInitial: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	for i := range 300 {
		publish(t, e.js, event("org_o", i))
	}
	// The store stays down longer than the ack wait: the ingestor must keep
	// its batch from redelivery and acknowledge nothing.
	waitFor(t, "several failed attempts", 5*time.Second, func() bool { return store.calls.Load() >= 5 })
	time.Sleep(3 * time.Second)
	info := consumerInfo(t, e.js)
	if info.AckFloor.Stream != 0 {
		t.Fatalf("ack floor moved to %d while the store was down", info.AckFloor.Stream)
	}
	calls := store.calls.Load()
	time.Sleep(300 * time.Millisecond)
	if store.calls.Load() > calls+3 {
		t.Fatalf("retries not backing off: %d attempts in 300ms", store.calls.Load()-calls)
	}
	store.failing.Store(false)
	waitFor(t, "every event stored after recovery", 10*time.Second, func() bool { return store.count() == 300 })
	waitFor(t, "every event acknowledged", 10*time.Second, func() bool {
		info := consumerInfo(t, e.js)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	// Every batch the instance held (three of 100, one in the insert and
	// two fetched behind it) was kept from redelivery through the outage:
	// each event was delivered once.
	if info := consumerInfo(t, e.js); info.NumRedelivered != 0 || info.Delivered.Stream != 300 {
		t.Fatalf("redelivered %d, delivered up to %d; want 0 and 300", info.NumRedelivered, info.Delivered.Stream)
	}
}

func TestGracefulStopFlushesLastBatch(t *testing.T) {
	e := startNATS(t, 30*time.Second)
	store := newMemStore()
	// A batch that would wait a minute to fill is flushed on stop.
	stop := run(t, e, store, ingestor.Config{BatchSize: 10_000, BatchWait: time.Minute})
	for i := range 40 {
		publish(t, e.js, event("org_s", i))
	}
	waitFor(t, "messages delivered", 5*time.Second, func() bool { return consumerInfo(t, e.js).NumPending == 0 })
	time.Sleep(100 * time.Millisecond)
	if store.count() != 0 {
		t.Fatalf("stored %d before the batch was due", store.count())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if store.count() != 40 {
		t.Fatalf("stored %d after stop, want 40", store.count())
	}
	waitFor(t, "acks after stop", 5*time.Second, func() bool { return consumerInfo(t, e.js).NumAckPending == 0 })
}

func TestCrashBeforeAckRedeliversEverything(t *testing.T) {
	e := startNATS(t, 2*time.Second)
	// The events are in the stream before the first instance starts, so
	// its first batch holds all of them however slowly they were
	// published (a batch closes BatchWait after its first message).
	for i := range 100 {
		publish(t, e.js, event("org_c", i))
	}
	// The first instance stores its batch, then "crashes" before acking:
	// its connection is closed and its insert never returns.
	nc1, err := e.srv.Connect("crashing", natstest.AdminOptions(t, e.srv)...)
	if err != nil {
		t.Fatal(err)
	}
	js1, _ := jetstream.New(nc1)
	crashing := newMemStore()
	crashing.block = make(chan struct{})
	ing1, err := ingestor.New(ingestor.Config{BatchSize: 100, BatchWait: 50 * time.Millisecond, AckWait: 2 * time.Second}, js1, crashing, fixedRetention(30))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ing1.Run(context.Background()) }()

	waitFor(t, "first instance stored the batch", 10*time.Second, func() bool { return crashing.count() == 100 })
	nc1.Close()

	store := newMemStore()
	run(t, e, store, ingestor.Config{BatchSize: 100, BatchWait: 50 * time.Millisecond, AckWait: 2 * time.Second})
	waitFor(t, "redelivery to the second instance", 10*time.Second, func() bool { return store.count() == 100 })
	crashing.mu.Lock()
	store.mu.Lock()
	for id := range crashing.rows {
		if _, ok := store.rows[id]; !ok {
			t.Errorf("event %s lost in the crash", id)
		}
	}
	store.mu.Unlock()
	crashing.mu.Unlock()
	close(crashing.block)
}

func TestConfigValidation(t *testing.T) {
	e := startNATS(t, 30*time.Second)
	_, err := ingestor.New(ingestor.Config{BatchSize: -1, BatchWait: -time.Second}, e.js, newMemStore(), fixedRetention(7))
	if err == nil {
		t.Fatal("want an error for a negative batch size and wait")
	}
	for _, want := range []string{"batch size", "batch wait"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := ingestor.New(ingestor.Config{}, e.js, nil, fixedRetention(7)); err == nil {
		t.Fatal("want an error for a nil store")
	}
}

// refusingStore refuses any batch holding a row of org "org_poison", as a
// store refuses a row it can never hold.
type refusingStore struct{ *memStore }

func (s refusingStore) Insert(ctx context.Context, rows []eventstore.Row) error {
	for k, r := range rows {
		if r.Event.OrgID == "org_poison" {
			return &eventstore.RowError{Index: k, EventID: r.Event.ID, Reason: "refused by the store"}
		}
	}
	return s.memStore.Insert(ctx, rows)
}

func TestRowTheStoreRefusesIsDeadLetteredAndTheRestStored(t *testing.T) {
	e := startNATS(t, 30*time.Second)
	store := refusingStore{newMemStore()}
	run(t, e, store, ingestor.Config{BatchSize: 100, BatchWait: 100 * time.Millisecond, RetryInitial: 10 * time.Millisecond})
	for i := range 50 {
		org := "org_ok"
		if i%10 == 3 {
			org = "org_poison"
		}
		publish(t, e.js, event(org, i))
	}
	waitFor(t, "the 45 storable events", 10*time.Second, func() bool { return store.count() == 45 })
	dl, _ := e.js.Stream(context.Background(), topology.DeadLetterStream)
	waitFor(t, "5 dead letters", 5*time.Second, func() bool {
		info, _ := dl.Info(context.Background())
		return info.State.Msgs == 5
	})
	m, _ := dl.GetMsg(context.Background(), 1)
	if r := m.Header.Get(topology.HeaderDLReason); r != "store: refused by the store" {
		t.Fatalf("reason %q", r)
	}
	waitFor(t, "everything acknowledged", 5*time.Second, func() bool {
		info := consumerInfo(t, e.js)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
}

// A deleted consumer does not stop the ingestor: it waits for the consumer
// to be recreated (here as the topology owner does) and stores what is
// published from then on; what it had stored stays stored once.
func TestDeletedConsumerIsWaitedForAndReadAgain(t *testing.T) {
	e := startNATS(t, 30*time.Second)
	store := newMemStore()
	stop := run(t, e, store, ingestor.Config{BatchSize: 10, BatchWait: 50 * time.Millisecond})
	for i := range 20 {
		publish(t, e.js, event("org_d", i))
	}
	waitFor(t, "the first events", 5*time.Second, func() bool { return store.count() == 20 })
	if err := e.js.DeleteConsumer(context.Background(), topology.EventsStream, topology.IngestorConsumer); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	var cfg topology.Config
	cfg.SetDefaults()
	if _, err := e.js.CreateOrUpdateConsumer(context.Background(), topology.EventsStream, cfg.IngestorConsumerConfig()); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		publish(t, e.js, event("org_d", 20+i))
	}
	waitFor(t, "the events published after the repair", 20*time.Second, func() bool { return store.count() == 50 })
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after the repair", err)
	}
}
