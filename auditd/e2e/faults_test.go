package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// The fault-injection suite. Its quick form runs in make test; make faults
// runs the long form (AUDIT_FAULTS_LONG=1: longer loads, more restarts,
// and the kill -9 of the auditd binary) and writes the table of results
// into docs/faults.md (AUDIT_FAULTS_REPORT).

var faultOrgs = []string{"org_alpha", "org_beta", "org_gamma"}

// producerConn returns connections with the producer identity on b.
func producerConn(t testing.TB, b *broker) func() jetstream.JetStream {
	return func() jetstream.JetStream {
		_, js := b.connect(t, natsauth.Producer, producer.ConnectOptions()...)
		return js
	}
}

// drain waits until the ingestor has acknowledged everything in the
// events stream.
func drain(t testing.TB, admin jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	waitFor(t, "the ingestor consumer to drain", timeout, func() bool {
		ci := consumerInfo(t, admin, topology.EventsStream, topology.IngestorConsumer)
		return ci != nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
}

// The broker restarts while producers emit: no call whose deadline
// outlasts the outage fails, and every acknowledged event is stored once.
// The process runs the ingestor and the log writer as auditd does (the
// ingestor seals): every stored event is also in its org's log once, with
// its leaf's index, and the writer keeps its lease through the outages.
func TestFaultBrokerRestartUnderLoad(t *testing.T) {
	b := startBroker(t)
	cfg := appConfig(t, b.URL(), writeCreds(t, b.keys), 1)
	store := newStore(t)
	a := startProcess(t, "auditd", cfg, store, true, []string{roles.Ingestor, roles.Tlog})
	_, admin := b.connect(t, natsauth.Admin)

	restarts, outage := 1, time.Second
	if faultsLong() {
		restarts = 3
	}
	l := startLoad(t, 4, producerConn(t, b), generators(4, faultOrgs), time.Minute, 2*time.Millisecond)
	var worst time.Duration
	for range restarts {
		time.Sleep(time.Second)
		b.Stop()
		time.Sleep(outage)
		b.Start(t)
		back := time.Now()
		r, err := l.resumedAfter(back, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, r)
	}
	time.Sleep(500 * time.Millisecond)
	l.Stop()
	drain(t, admin, time.Minute)
	res := account(l.ids(), storedIDs(t, store, faultOrgs...))
	if l.failed != 0 {
		t.Errorf("%d Emit calls failed with a 1 min deadline across %s outages: %v", l.failed, outage, l.errs)
	}
	if res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("broker restart: %+v", res)
	}
	select {
	case err := <-a.done:
		a.once.Do(func() { a.err = err })
		t.Fatalf("auditd stopped during the restarts: %v", err)
	default:
	}
	trees, err := treestore.New(store.Engine(), treestore.Config{Database: store.Database()})
	if err != nil {
		t.Fatal(err)
	}
	checkSealed(t, store, trees, faultOrgs...)
	report(t, faultRow{Scenario: fmt.Sprintf("broker restarted under load (%d× %s down)", restarts, outage),
		Acked: res.Acked, Stored: res.Stored, Duplicates: res.Duplicates, Lost: res.Lost, Recovery: worst,
		Note: fmt.Sprintf("4 producers, Emit deadline 1 min: %d calls failed; sealing ingestor, every stored event logged once with its index; recovery: broker ready → first Emit started after it succeeded (worst)", l.failed)})
}

// ingestorOn runs an ingestor with store on b, as the ingestor binary
// would, until the test ends.
func ingestorOn(t testing.TB, b *broker, store ingestor.Store, settings *orgsettings.Store, ackWait time.Duration, opts ...ingestor.Option) {
	t.Helper()
	_, js := b.connect(t, natsauth.Ingestor)
	ing, err := ingestor.New(ingestor.Config{BatchSize: 1000, BatchWait: 50 * time.Millisecond, AckWait: ackWait,
		RetryInitial: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond}, js, store, settings, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// sealingIngestorOn runs, until the test ends, an ingestor on b that
// seals, as auditd's ingestor role does beside the tlog role: the log
// writer (its own identity, the tree in events' database) serves as its
// sequencer, and each batch's new events are logged before they are
// stored with their log indices, through store (events or a wrapper of
// it). It returns the writer's tree store.
func sealingIngestorOn(t testing.TB, b *broker, events *eventstore.Store, store ingestor.Store, settings *orgsettings.Store, ackWait time.Duration) *treestore.Store {
	t.Helper()
	_, js := b.connect(t, natsauth.Tlog)
	seq := serveSequencer(t, js, events, time.Second, zap.NewNop())
	// Cleanups run last first: the ingestor stops (its last batch
	// sealed) before the writer does.
	ingestorOn(t, b, store, settings, ackWait, ingestor.WithSealer(seq.w))
	return seq.trees
}

// topologyOn creates the topology on b as its owner and opens the org
// settings.
func topologyOn(t testing.TB, b *broker, cfg topology.Config) (jetstream.JetStream, *orgsettings.Store) {
	t.Helper()
	_, admin := b.connect(t, natsauth.Admin)
	cfg.SetDefaults()
	if err := topology.Ensure(context.Background(), admin, cfg); err != nil {
		t.Fatal(err)
	}
	settings, err := orgsettings.Open(context.Background(), admin, 1, orgsettings.Developer, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(settings.Close)
	return admin, settings
}

// The sealing ingestor's store becomes unavailable for longer than the
// ack wait and comes back. The embedded engine cannot be taken down
// without ending the test process, so the outage is the ingestor's store
// seam answering every insert with an error, as a ClickHouse client does
// while its server is unreachable: half of them before anything is
// written, half after the batch's new events were logged (leaves stored,
// events not); the rows then go to the real store. Each event is stored
// once, in its org's log once, with its leaf's index.
func TestFaultStoreOutage(t *testing.T) {
	b := startBroker(t)
	admin, settings := topologyOn(t, b, topology.Config{IngestAckWait: 2 * time.Second})
	store := &flakyStore{Store: newStore(t)}
	trees := sealingIngestorOn(t, b, store.Store, store, settings, 2*time.Second)
	down := 4 * time.Second
	if faultsLong() {
		down = 20 * time.Second
	}
	l := startLoad(t, 4, producerConn(t, b), generators(4, faultOrgs), time.Minute, 2*time.Millisecond)
	time.Sleep(time.Second)
	store.down.Store(true)
	time.Sleep(down)
	store.down.Store(false)
	back := time.Now()
	events, err := admin.Stream(context.Background(), topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := events.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	backlog := info.State.LastSeq
	waitFor(t, "the backlog stored", time.Minute, func() bool {
		ci := consumerInfo(t, admin, topology.EventsStream, topology.IngestorConsumer)
		return ci != nil && ci.AckFloor.Stream >= backlog
	})
	caughtUp := time.Since(back)
	l.Stop()
	drain(t, admin, time.Minute)
	res := account(l.ids(), storedIDs(t, store.Store, faultOrgs...))
	if res.Lost != 0 || res.Duplicates != 0 || l.failed != 0 {
		t.Errorf("store outage: %+v, %d Emit calls failed", res, l.failed)
	}
	if store.logged.Load() == 0 {
		t.Error("no insert was refused after its batch was logged")
	}
	checkSealed(t, store.Store, trees, faultOrgs...)
	report(t, faultRow{Scenario: fmt.Sprintf("store unavailable for %s under load", down),
		Acked: res.Acked, Stored: res.Stored, Duplicates: res.Duplicates, Lost: res.Lost, Recovery: caughtUp,
		Note: fmt.Sprintf("sealing ingestor: %d inserts refused (%d after the batch was logged), every stored event logged once with its index; producers unaffected (%d calls failed); ack wait 2 s; recovery: store back → backlog stored",
			store.failures.Load(), store.logged.Load(), l.failed)})
}

// The events stream fills up while no ingestor reads it: publishes fail
// loudly, and once a sealing ingestor drains it the refused events are
// emitted again (same ids), nothing acknowledged is lost, and every
// stored event is in its org's log with its leaf's index.
func TestFaultFullStream(t *testing.T) {
	b := startBroker(t)
	admin, settings := topologyOn(t, b, topology.Config{MaxBytes: 256 << 10})
	prod, err := producer.New(producerConn(t, b)())
	if err != nil {
		t.Fatal(err)
	}
	gen := generators(1, faultOrgs)
	var acked []string
	var refused []schemas.Event
	var firstErr error
	for i := 0; len(refused) < 20; i++ {
		ev := gen(0, i)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		r, err := prod.Emit(ctx, ev)
		cancel()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			refused = append(refused, ev)
			continue
		}
		acked = append(acked, r.EventID)
	}
	if len(acked) == 0 {
		t.Fatal("nothing was accepted before the stream was full")
	}
	store := newStore(t)
	trees := sealingIngestorOn(t, b, store, store, settings, 5*time.Second)
	start := time.Now()
	var recovery time.Duration
	for i, ev := range refused {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := prod.Emit(ctx, ev)
		cancel()
		if err != nil {
			t.Fatalf("refused event emitted again after the ingestor started: %v", err)
		}
		if i == 0 {
			recovery = time.Since(start)
		}
		acked = append(acked, r.EventID)
	}
	drain(t, admin, time.Minute)
	res := account(acked, storedIDs(t, store, faultOrgs...))
	if res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("full stream: %+v", res)
	}
	checkSealed(t, store, trees, faultOrgs...)
	var full *jetstream.APIError
	msg := firstErr.Error()
	if errors.As(firstErr, &full) {
		msg = full.Description
	}
	report(t, faultRow{Scenario: "events stream full (256 KiB), then drained",
		Acked: res.Acked, Stored: res.Stored, Duplicates: res.Duplicates, Lost: res.Lost, Recovery: recovery,
		Note: fmt.Sprintf("%d accepted, then Emit failed loudly (%q) for the next %d; emitted again once a sealing ingestor ran, every stored event logged with its index; recovery: ingestor started → first of them accepted", res.Acked-len(refused), msg, len(refused))})
}

// Webhook and SIEM receivers go down (webhooks answer 500, the syslog
// port refuses connections), then answer slowly, then recover, while
// events arrive: each receiver gets every event.
func TestFaultSlowAndDeadReceivers(t *testing.T) {
	b := startBroker(t)
	cfg := appConfig(t, b.URL(), writeCreds(t, b.keys), 1)
	store := newStore(t)
	a := startProcess(t, "auditd", cfg, store, true, allRoles)
	hook, siem := newWebhookReceiver(t), newSyslogReceiver(t)
	const org = "org_alpha"
	a.addWebhook(t, org, hook.srv.URL+"/hook")
	a.addSyslog(t, org, siem.addr)
	dead, slow := 5*time.Second, 3*time.Second
	if faultsLong() {
		slow = 10 * time.Second
	}
	l := startLoad(t, 2, producerConn(t, b), generators(2, []string{org}), time.Minute, 10*time.Millisecond)
	waitFor(t, "first deliveries", 30*time.Second, func() bool { return hook.distinct() > 0 && siem.distinct() > 0 })
	hook.set(receiverDown)
	siem.set(t, receiverDown)
	time.Sleep(dead)
	hook.set(receiverSlow)
	siem.set(t, receiverSlow)
	time.Sleep(slow)
	hook.set(receiverUp)
	siem.set(t, receiverUp)
	back := time.Now()
	l.Stop()
	want := l.idsOf(org)
	waitFor(t, "every event at both receivers", 2*time.Minute, func() bool {
		return hook.missing(want) == 0 && siem.missing(want) == 0
	})
	caughtUp := time.Since(back)
	for _, r := range []struct {
		name string
		c    *tally
	}{{"webhook", hook.tally}, {"SIEM (syslog over TCP)", siem.tally}} {
		report(t, faultRow{Scenario: fmt.Sprintf("%s receiver dead %s, then slow (%s per request or record) for %s", r.name, dead, slowDelay, slow),
			Acked: len(want), Stored: len(want) - r.c.missing(want), Duplicates: r.c.duplicates(), Lost: r.c.missing(want), Recovery: caughtUp,
			Note: "stored = delivered to the receiver; duplicated = repeated deliveries; recovery: receiver healthy → every event delivered"})
	}
}

// A producer's clock jumps: events stamped far in the past or ahead. The
// system clock is not changed (it cannot be, honestly, in a test); what is
// tested is what the producer's clock controls, occurred_at. Retention and
// received_at come from the JetStream server's clock, so a producer clock
// in the past does not expire its events early. An event more than 24 h
// ahead is refused by validation before it is published, with an error.
func TestFaultClockJump(t *testing.T) {
	b := startBroker(t)
	admin, settings := topologyOn(t, b, topology.Config{})
	store := newStore(t)
	ingestorOn(t, b, store, settings, 5*time.Second)
	prod, err := producer.New(producerConn(t, b)())
	if err != nil {
		t.Fatal(err)
	}
	gen := generators(1, faultOrgs)
	now := time.Now().UTC().Truncate(time.Millisecond)
	shifts := []time.Duration{-10 * 365 * 24 * time.Hour, -time.Hour, time.Hour, 23 * time.Hour, 25 * time.Hour}
	var acked []string
	var refused []string
	ctx := context.Background()
	for i := range 200 {
		shift := shifts[i%len(shifts)]
		ev := gen(0, i)
		ev.OccurredAt = now.Add(shift)
		r, err := prod.Emit(ctx, ev)
		var invalid *producer.InvalidEventError
		switch {
		case shift > 24*time.Hour && errors.As(err, &invalid):
			refused = append(refused, ev.ID)
		case err != nil:
			t.Fatalf("occurred_at %s: %v", shift, err)
		case shift > 24*time.Hour:
			t.Fatalf("an event %s ahead was accepted", shift)
		default:
			acked = append(acked, r.EventID)
		}
	}
	drain(t, admin, time.Minute)
	stored := storedIDs(t, store, faultOrgs...)
	res := account(acked, stored)
	for _, id := range refused {
		if stored[id] != 0 {
			t.Errorf("refused event %s stored", id)
		}
	}
	if res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("clock jump: %+v", res)
	}
	var names []string
	for _, s := range shifts {
		names = append(names, fmt.Sprintf("%+.0fh", s.Hours()))
	}
	report(t, faultRow{Scenario: "producer clock jumps (occurred_at " + strings.Join(names, ", ") + ")",
		Acked: res.Acked, Stored: res.Stored, Duplicates: res.Duplicates, Lost: res.Lost,
		Note: fmt.Sprintf("%d events 25 h ahead refused by validation with an error (never published); the system clock is not changed, retention counts from the server's received_at", len(refused))})
}
