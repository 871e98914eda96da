package producer_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

const stream = "AUDIT_EVENTS"

// startServer runs a real NATS server with JetStream in the test process.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func connect(t testing.TB, srv *server.Server, opts ...jetstream.JetStreamOpt) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// createStream creates the events stream as the services do, minus what
// the producer does not depend on.
func createStream(t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{
		Name: stream, Subjects: []string{"audit.events.>"}, Storage: jetstream.FileStorage,
		Duplicates: time.Minute, DenyDelete: true, DenyPurge: true, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func setup(t testing.TB, opts ...producer.Option) (*producer.Producer, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	srv := startServer(t)
	js := connect(t, srv)
	s := createStream(t, js)
	p, err := producer.New(js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p, js, s
}

var alice = producer.User("usr_alice", "Alice Example", "alice@example.com")

func msgs(t testing.TB, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestEmitStoresCanonicalEventOnItsSubject(t *testing.T) {
	p, _, s := setup(t)
	ev := producer.MemberRoleChanged("org_1", alice, producer.Member("usr_bob", "Bob", "bob@example.com"), "member", "admin")
	r, err := p.Emit(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Stream != stream || r.Seq != 1 || r.Duplicate || r.EventID == "" {
		t.Fatalf("receipt = %+v", r)
	}
	m, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "audit.events.org_1.member.role_changed" {
		t.Fatalf("subject = %q", m.Subject)
	}
	if got := m.Header.Get(jetstream.MsgIDHeader); got != "org_1/"+r.EventID || got != producer.MsgID("org_1", r.EventID) {
		t.Fatalf("Nats-Msg-Id = %q, want the org and the event id %q", got, r.EventID)
	}
	stored, err := schemas.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if stored.ID != r.EventID || stored.Category != "member" || stored.OccurredAt.IsZero() || stored.Outcome != schemas.OutcomeSuccess {
		t.Fatalf("producer did not fill id, category, occurred_at and outcome: %+v", stored)
	}
	canon, _ := schemas.Canonical(stored)
	if string(canon) != string(m.Data) {
		t.Fatalf("published bytes are not canonical:\n got %s\nwant %s", m.Data, canon)
	}
}

func TestRetriedPublishIsStoredOnce(t *testing.T) {
	p, _, s := setup(t)
	ev := producer.APIKeyCreated("org_1", alice, producer.APIKey("key_1", "ci"), "tk_live_ab", []string{"read"})
	ev.ID = schemas.NewID()
	first, err := p.Emit(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Emit(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Duplicate || second.Seq != first.Seq {
		t.Fatalf("second publish of the same id: %+v, want a duplicate of seq %d", second, first.Seq)
	}
	if _, err := p.EmitAsync(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := msgs(t, s); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
	// Ids are unique per org: another org's event under the same id is
	// not a duplicate of the first, and is stored.
	other := ev
	other.OrgID = "org_2"
	r, err := p.Emit(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	if r.Duplicate || r.Seq == first.Seq || msgs(t, s) != 2 {
		t.Fatalf("the same id in another org: %+v, stream holds %d messages", r, msgs(t, s))
	}
}

func TestInvalidEventIsRefusedAndNotPublished(t *testing.T) {
	p, _, s := setup(t)
	ev := schemas.Event{
		OrgID:   "org with spaces",
		Action:  "member.role_changed",
		Actor:   schemas.Actor{Type: "robot"},
		Outcome: "maybe",
		Details: map[string]any{"from_role": 5},
	}
	_, err := p.Emit(context.Background(), ev)
	var inv *producer.InvalidEventError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want *InvalidEventError", err)
	}
	var verr *schemas.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want it to unwrap to *schemas.ValidationError", err)
	}
	paths := map[string]bool{}
	for _, pr := range verr.Problems {
		paths[pr.Path] = true
	}
	for _, want := range []string{"org_id", "actor.type", "actor.id", "outcome", "details.from_role", "details.to_role"} {
		if !paths[want] {
			t.Errorf("no problem reported for %s; got %v", want, verr.Problems)
		}
	}
	if _, err := p.EmitAsync(context.Background(), ev); !errors.As(err, &inv) {
		t.Fatalf("EmitAsync err = %v, want *InvalidEventError", err)
	}
	if n := msgs(t, s); n != 0 {
		t.Fatalf("an invalid event reached the stream (%d messages)", n)
	}
}

func TestEmitRetriesUntilTheStreamExists(t *testing.T) {
	srv := startServer(t)
	js := connect(t, srv)
	p, err := producer.New(js, producer.WithRetry(producer.RetryPolicy{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, MaxElapsed: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		createStream(t, js)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.Emit(ctx, producer.AuthLogin("org_1", alice, "password"))
	if err != nil {
		t.Fatalf("Emit did not ride out a missing stream: %v", err)
	}
	if r.Seq != 1 {
		t.Fatalf("receipt = %+v", r)
	}
}

func TestEmitGivesUpAtTheDeadlineWithATypedError(t *testing.T) {
	srv := startServer(t)
	js := connect(t, srv) // no stream: every publish fails
	p, _ := producer.New(js, producer.WithRetry(producer.RetryPolicy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2, MaxElapsed: time.Minute}))
	// nats.go itself retries a publish that finds no stream for ~0.5 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := p.Emit(ctx, producer.AuthLogout("org_1", alice))
	var perr *producer.PublishError
	if !errors.As(err, &perr) || perr.Attempts < 2 {
		t.Fatalf("err = %v, want *PublishError after several attempts", err)
	}
	if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v does not unwrap to the cause", err)
	}
}

func TestEmitAsyncFlushCloseAndWindow(t *testing.T) {
	p, _, s := setup(t, producer.WithMaxInFlight(16))
	const n = 2000
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				ev := producer.AuthLogin(fmt.Sprintf("org_%d", w), alice, "sso")
				if _, err := p.EmitAsync(context.Background(), ev); err != nil {
					t.Error(err)
					return
				}
				_ = i
			}
		}()
	}
	wg.Wait()
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := msgs(t, s); got != n {
		t.Fatalf("stream holds %d messages after Flush, want %d", got, n)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Emit(context.Background(), producer.AuthLogout("org_1", alice)); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("Emit after Close: %v, want ErrClosed", err)
	}
	if _, err := p.EmitAsync(context.Background(), producer.AuthLogout("org_1", alice)); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("EmitAsync after Close: %v, want ErrClosed", err)
	}
}

func TestEmitAsyncReportsFinalFailures(t *testing.T) {
	srv := startServer(t)
	js := connect(t, srv) // no stream
	var mu sync.Mutex
	var failed []string
	p, _ := producer.New(js,
		producer.WithRetry(producer.RetryPolicy{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 2, MaxElapsed: 200 * time.Millisecond}),
		producer.WithAsyncErrorHandler(func(ev schemas.Event, err error) {
			mu.Lock()
			failed = append(failed, ev.ID)
			mu.Unlock()
		}))
	id, err := p.EmitAsync(context.Background(), producer.AuthLogout("org_1", alice))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Flush(context.Background())
	var perr *producer.PublishError
	if !errors.As(err, &perr) || perr.EventID != id {
		t.Fatalf("Flush = %v, want the *PublishError of %s", err, id)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 || failed[0] != id {
		t.Fatalf("error handler saw %v, want [%s]", failed, id)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatalf("a second Flush reports the same failure again: %v", err)
	}
}

func TestEmitAsyncWaitsForTheWindowUntilContextEnds(t *testing.T) {
	srv := startServer(t)
	js := connect(t, srv) // no stream: publishes hang until the retry gives up
	p, _ := producer.New(js, producer.WithMaxInFlight(1),
		producer.WithRetry(producer.RetryPolicy{Initial: 50 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 1, MaxElapsed: 2 * time.Second}))
	if _, err := p.EmitAsync(context.Background(), producer.AuthLogout("org_1", alice)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.EmitAsync(ctx, producer.AuthLogout("org_1", alice)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second EmitAsync with a full window: %v, want the context's deadline", err)
	}
}

// The producer's import graph must stay small: schemas and nats.go.
func TestProducerDependsOnlyOnSchemasAndNATS(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == "github.com/takumo/audit/producer",
			dep == "github.com/takumo/audit/schemas",
			strings.HasPrefix(dep, "github.com/nats-io/nats.go"),
			strings.HasPrefix(dep, "github.com/nats-io/nkeys"),
			strings.HasPrefix(dep, "github.com/nats-io/nuid"),
			strings.HasPrefix(dep, "github.com/klauspost/compress"),
			strings.HasPrefix(dep, "golang.org/x/crypto"),
			strings.HasPrefix(dep, "golang.org/x/sys"):
		default:
			t.Errorf("producer imports %s", dep)
		}
	}
}

// PublishBatch stores each prepared event once, answers each with its
// sequence, flags the ids the stream already holds, and fills
// context.source from WithSource.
func TestPublishBatch(t *testing.T) {
	srv := startServer(t)
	js := connect(t, srv)
	st := createStream(t, js)
	p, err := producer.New(js, producer.WithSource("billing/sk_1"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var msgs []*nats.Msg
	for i := range 50 {
		ev, m, err := p.Prepare(producer.AuthLogin("org_a", producer.User(fmt.Sprintf("u_%d", i), "", ""), "password"))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Context.Source != "billing/sk_1" {
			t.Fatalf("source %q", ev.Context.Source)
		}
		ids, msgs = append(ids, ev.ID), append(msgs, m)
	}
	ctx := context.Background()
	first, errs := p.PublishBatch(ctx, ids, msgs)
	for i := range first {
		if errs[i] != nil || first[i].Duplicate || first[i].Seq == 0 || first[i].EventID != ids[i] {
			t.Fatalf("event %d: %+v %v", i, first[i], errs[i])
		}
	}
	again, errs := p.PublishBatch(ctx, ids[:5], msgs[:5])
	for i := range again {
		if errs[i] != nil || !again[i].Duplicate || again[i].Seq != first[i].Seq {
			t.Fatalf("re-sent %d: %+v %v", i, again[i], errs[i])
		}
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 50 {
		t.Fatalf("%d stored (%v)", info.State.Msgs, err)
	}
}
