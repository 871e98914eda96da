package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// generators returns gen for startLoad: realistic events spread over
// orgs, each producer with its own generator.
func generators(n int, orgs []string) func(w, i int) schemas.Event {
	gens := make([]*demo.Generator, n)
	for w := range gens {
		gens[w] = demo.NewGenerator(uint64(100 + w))
	}
	return func(w, i int) schemas.Event {
		ev := gens[w].Next()
		ev.OrgID = orgs[(w+i)%len(orgs)]
		ev.ID = schemas.NewID()
		ev.OccurredAt = time.Now().UTC().Truncate(time.Millisecond)
		return ev
	}
}

// killingStore is an ingestor's store that, once armed, lets one insert
// reach ClickHouse and then kills its ingestor (closes its connection)
// before the ingestor can acknowledge the batch: a crash between insert
// and ack, the worst moment for duplicates.
type killingStore struct {
	*eventstore.Store
	armed  atomic.Bool
	killed chan struct{}
	kill   func()
}

func (s *killingStore) Insert(ctx context.Context, rows []eventstore.Row) error {
	if err := s.Store.Insert(ctx, rows); err != nil {
		return err
	}
	if s.armed.CompareAndSwap(true, false) {
		s.kill()
		close(s.killed)
	}
	return nil
}

// standaloneIngestor runs an ingestor instance as the ingestor binary
// would: its own connection to the cluster, with the ingestor identity.
func standaloneIngestor(t testing.TB, c *natstest.Cluster, store ingestor.Store, settings *orgsettings.Store, ackWait time.Duration) (nc *nats.Conn, stop func()) {
	t.Helper()
	nc, js := c.Connect(t, c.Keys[natsauth.Ingestor])
	ing, err := ingestor.New(ingestor.Config{BatchSize: 1000, BatchWait: 50 * time.Millisecond, AckWait: ackWait}, js, store, settings)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; nc.Close() }) }
	return nc, stop
}

// TestClusterFaults runs the pipeline on a three-node NATS cluster with
// every stream, consumer and bucket on three replicas
// (AUDIT_STREAM_REPLICAS=3): one process with auditd's roles (topology
// owner, ingestor, webhook dispatcher, SIEM forwarder, APIs) and a second
// ingestor instance sharing the durable consumer. Both store into the one
// ClickHouse session of the test process (one eventstore.Store; the
// embedded engine allows one session per process). Under a continuous
// producer load it stops the stream leader, then a follower, kills the
// second ingestor between an insert and its acknowledgement, and finally
// restarts everything. Every acknowledged event must be stored exactly
// once; producers must resume and the webhook and SIEM receivers must
// keep receiving after every fault.
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster faults: not in -short")
	}
	c := natstest.StartCluster(t, 3)
	creds := writeCreds(t, c.Keys)
	cfg := appConfig(t, c.URL(), creds, 3)
	store := newStore(t)
	ctx := context.Background()

	a := startProcess(t, "auditd-a", cfg, store, true, allRoles)
	_, admin := c.Connect(t, c.Keys[natsauth.Admin])
	settings, err := orgsettings.Open(ctx, admin, 3, orgsettings.Enterprise, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(settings.Close)
	for _, s := range []string{topology.EventsStream, topology.FanoutStream} {
		info := streamInfo(t, admin, s)
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("%s: replicas %d, cluster %+v; want 3 replicas on three nodes", s, info.Config.Replicas, info.Cluster)
		}
	}
	ks := &killingStore{Store: store, killed: make(chan struct{})}
	ncB, stopB := standaloneIngestor(t, c, ks, settings, cfg.IngestAckWait)
	ks.kill = ncB.Close
	defer func() { stopB() }()

	hook, siem := newWebhookReceiver(t), newSyslogReceiver(t)
	const hookOrg = "org_alpha"
	a.addWebhook(t, hookOrg, hook.srv.URL+"/hook")
	a.addSyslog(t, hookOrg, siem.addr)

	orgs := []string{hookOrg, "org_beta", "org_gamma"}
	const producers = 4
	l := startLoad(t, producers, func() jetstream.JetStream {
		_, js := c.Connect(t, c.Keys[natsauth.Producer], producer.ConnectOptions()...)
		return js
	}, generators(producers, orgs), time.Minute, 5*time.Millisecond)
	defer l.Stop()

	t.Log("load started")
	// A readiness wait: the dispatcher and the SIEM worker create their
	// consumers on three replicas first, slow on a loaded 2-core machine.
	waitFor(t, "first deliveries", 90*time.Second, func() bool { return hook.distinct() > 0 && siem.distinct() > 0 })

	type phase struct {
		name            string
		resume          time.Duration
		hookAfter, siem int
	}
	var phases []phase
	// after waits for load and deliveries to continue after a fault at
	// at: producers resumed, and both receivers got events acknowledged
	// after the fault.
	after := func(name string, at time.Time) {
		t.Helper()
		t.Logf("%s: %s", time.Now().Format("15:04:05.000"), name)
		resume, err := l.resumedAfter(at, time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resume > 15*time.Second {
			t.Errorf("%s: producers stalled for %s", name, resume)
		}
		mark := l.count()
		// Deliveries of events acknowledged after the fault, to both
		// receivers; on a timeout, what each receiver got of them.
		deadline := time.Now().Add(90 * time.Second)
		for {
			var both, hookOnly, siemOnly int
			ids := l.ids()
			for _, id := range ids[mark:] {
				h, s := hook.has(id), siem.has(id)
				switch {
				case h && s:
					both++
				case h:
					hookOnly++
				case s:
					siemOnly++
				}
			}
			if both >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: after 90s, of the %d events (all orgs; the receivers get %s's) acknowledged after the fault %d reached both receivers, %d only the webhook, %d only the SIEM receiver",
					name, len(ids)-mark, hookOrg, both, hookOnly, siemOnly)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s: %s: resumed after %s, deliveries continue", time.Now().Format("15:04:05.000"), name, resume)
		phases = append(phases, phase{name: name, resume: resume, hookAfter: hook.distinct(), siem: siem.distinct()})
	}
	time.Sleep(time.Second)

	// The leader of AUDIT_EVENTS stops.
	leader := c.StreamLeader(t, admin, topology.EventsStream, 10*time.Second)
	c.Stop(leader)
	after("stream leader "+c.Name(leader)+" stopped", time.Now())
	if now := c.StreamLeader(t, admin, topology.EventsStream, 30*time.Second); now == leader {
		t.Fatal("the stopped node still leads")
	}
	c.Restart(t, leader)
	c.WaitReady(t, time.Minute)

	// A follower stops.
	lead := c.StreamLeader(t, admin, topology.EventsStream, 30*time.Second)
	follower := (lead + 1) % c.Len()
	c.Stop(follower)
	after("follower "+c.Name(follower)+" stopped", time.Now())
	c.Restart(t, follower)
	c.WaitReady(t, time.Minute)

	// The second ingestor dies between an insert and its ack.
	t.Logf("%s: arming the kill", time.Now().Format("15:04:05.000"))
	ks.armed.Store(true)
	select {
	case <-ks.killed:
	case <-time.After(time.Minute):
		t.Fatal("the second ingestor never inserted")
	}
	after("ingestor killed mid-batch", time.Now())
	stopB()
	_, stopB = standaloneIngestor(t, c, store, settings, cfg.IngestAckWait)

	// Everything stops and starts again: both processes, all three nodes.
	stopB()
	if err := a.Stop(); err != nil {
		t.Fatalf("auditd-a stopped with %v", err)
	}
	for i := range c.Len() {
		c.Stop(i)
	}
	for i := range c.Len() {
		go c.Restart(t, i)
	}
	t.Logf("%s: all stopped", time.Now().Format("15:04:05.000"))
	down := time.Now()
	waitFor(t, "the cluster back", time.Minute, func() bool {
		for i := range c.Len() {
			if c.Server(i) == nil {
				return false
			}
		}
		return true
	})
	c.WaitReady(t, time.Minute)
	// auditd's topology owner waits for streams without a leader yet
	// (AUDIT_TOPOLOGY_START_WAIT); waiting for the events stream's
	// leader first keeps that wait out of the measured recovery.
	c.StreamLeader(t, admin, topology.EventsStream, time.Minute)
	a = startProcess(t, "auditd-a", cfg, store, true, allRoles)
	_, stopB = standaloneIngestor(t, c, store, settings, cfg.IngestAckWait)
	after("everything restarted", down)

	l.Stop()
	acked := l.ids()
	waitFor(t, "the ingestor consumer to drain", 2*time.Minute, func() bool {
		ci := consumerInfo(t, admin, topology.EventsStream, topology.IngestorConsumer)
		return ci != nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	res := account(acked, storedIDs(t, store, orgs...))
	hookWant := l.idsOf(hookOrg)
	waitFor(t, "every acknowledged event at both receivers", 2*time.Minute, func() bool {
		return hook.missing(hookWant) == 0 && siem.missing(hookWant) == 0
	})
	var worst time.Duration
	var resumes []string
	for _, p := range phases {
		worst = max(worst, p.resume)
		resumes = append(resumes, fmt.Sprintf("%s %s", p.name, seconds(p.resume)))
		t.Logf("%-34s producers resumed after %6s; receivers so far: webhook %d, SIEM %d", p.name, p.resume.Round(time.Millisecond), p.hookAfter, p.siem)
	}
	t.Logf("acknowledged %d, stored %d, duplicated %d, lost %d; failed Emit calls %d %v", res.Acked, res.Stored, res.Duplicates, res.Lost, l.failed, l.errs)
	t.Logf("%s events: webhook received %d, %d duplicates; SIEM received %d, %d duplicates",
		hookOrg, len(hookWant), hook.duplicates(), len(hookWant), siem.duplicates())
	if res.Lost != 0 || res.Duplicates != 0 || res.Stored != res.Acked {
		t.Fatalf("acknowledged %d, stored %d, duplicated %d, lost %d", res.Acked, res.Stored, res.Duplicates, res.Lost)
	}
	report(t, faultRow{Scenario: "3-node cluster: stream leader, follower, ingestor mid-batch, everything restarted",
		Acked: res.Acked, Stored: res.Stored, Duplicates: res.Duplicates, Lost: res.Lost,
		Recovery: worst, Note: fmt.Sprintf("producers resumed after: %s; webhook and SIEM receivers got every %s event after each fault (%d and %d repeats); after the full restart auditd's roles started at attempt %d (the topology owner times out while streams elect leaders)",
			strings.Join(resumes, ", "), hookOrg, hook.duplicates(), siem.duplicates(), a.attempts)})
}
