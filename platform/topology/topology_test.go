package topology_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
)

func defaults() topology.Config {
	var c topology.Config
	c.SetDefaults()
	return c
}

func TestEnsureIsIdempotentAndDeclaresTheGuarantees(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	for range 2 {
		if err := topology.Ensure(ctx, js, defaults()); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if !c.DenyDelete || !c.DenyPurge || c.Retention != jetstream.InterestPolicy || c.Discard != jetstream.DiscardNew ||
		c.Storage != jetstream.FileStorage || c.Duplicates != 10*time.Minute || c.MaxAge != 0 {
		t.Fatalf("events stream config = %+v", c)
	}
	if _, err := s.Consumer(ctx, topology.IngestorConsumer); err != nil {
		t.Fatalf("ingestor consumer not created: %v", err)
	}
	dl, err := js.Stream(ctx, topology.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if dc := dl.CachedInfo().Config; !dc.DenyDelete || !dc.DenyPurge || dc.Discard != jetstream.DiscardNew {
		t.Fatalf("dead-letter stream config = %+v", dc)
	}
}

func TestEventsCannotBeDeletedOrPurged(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	if err := topology.Ensure(ctx, js, defaults()); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "audit.events.org_1.auth.login", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, topology.EventsStream)
	if err := s.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("deleting an event succeeded")
	}
	if err := s.SecureDeleteMsg(ctx, 1); err == nil {
		t.Fatal("erasing an event succeeded")
	}
	if err := s.Purge(ctx); err == nil {
		t.Fatal("purging the stream succeeded")
	}
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}

func TestFullStreamRefusesPublishesAndKeepsWhatItHas(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	cfg := defaults()
	cfg.MaxBytes = 64 << 10
	if err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 1024))
	var stored int
	var refused error
	for i := range 200 {
		_, err := js.Publish(ctx, "audit.events.org_1.auth.login", body, jetstream.WithMsgID(string(rune('a'+i%26))+strings.Repeat("0", i)))
		if err != nil {
			refused = err
			break
		}
		stored++
	}
	if refused == nil {
		t.Fatal("a full stream accepted every publish")
	}
	var apiErr *jetstream.APIError
	if !errors.As(refused, &apiErr) {
		t.Fatalf("refusal is %T %v, want a JetStream API error", refused, refused)
	}
	s, _ := js.Stream(ctx, topology.EventsStream)
	info, _ := s.Info(ctx)
	if int(info.State.Msgs) != stored || stored == 0 {
		t.Fatalf("stream holds %d messages, %d were acknowledged", info.State.Msgs, stored)
	}
	if info.State.FirstSeq != 1 {
		t.Fatalf("first sequence %d: older events were dropped to make room", info.State.FirstSeq)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	err := topology.Config{Replicas: 2, MaxBytes: -1, DeadLetterMaxBytes: 1, MaxMsgSize: 100, DuplicateWindow: time.Millisecond, IngestAckWait: time.Second, IngestMaxAckPending: 1}.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"replicas", "stream max bytes", "max message size", "duplicate window"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
	if err := topology.Ensure(context.Background(), nil, topology.Config{}); err == nil {
		t.Fatal("Ensure accepted a zero config")
	}
}

func TestDeadLetterKeepsBodyHeadersAndReasonOnce(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	if err := topology.Ensure(ctx, js, defaults()); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("audit.events.org_1.auth.login")
	m.Data = []byte("not an event")
	m.Header.Set("Traceparent", "00-abc-def-01")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	cons, _ := js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	msg := <-batch.Messages()
	reason := "decode: line one\nline two " + strings.Repeat("r", 2000)
	for range 2 {
		if err := topology.DeadLetter(ctx, js, topology.IngestorConsumer, msg, reason); err != nil {
			t.Fatal(err)
		}
	}
	dl, _ := js.Stream(ctx, topology.DeadLetterStream)
	info, _ := dl.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("dead-lettering twice stored %d copies", info.State.Msgs)
	}
	got, err := dl.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != "not an event" || got.Header.Get("Traceparent") != "00-abc-def-01" {
		t.Fatalf("dead letter lost the original: %q %v", got.Data, got.Header)
	}
	r := got.Header.Get(topology.HeaderDLReason)
	if len(r) != topology.MaxReasonLen || strings.Contains(r, "\n") || !strings.HasPrefix(r, "decode: line one line two") {
		t.Fatalf("reason header %q (len %d)", r[:40], len(r))
	}
	if got.Subject != topology.DeadLetterSubject(topology.IngestorConsumer) ||
		got.Header.Get(topology.HeaderDLSubject) != "audit.events.org_1.auth.login" ||
		got.Header.Get(topology.HeaderDLStreamSeq) != "1" {
		t.Fatalf("dead letter origin headers: %s %v", got.Subject, got.Header)
	}
}

func TestLagCollectorReportsBacklog(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	if err := topology.Ensure(ctx, js, defaults()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "audit.events.org_1.auth.login", []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	waitForFanout(t, js, 3)
	// Consumers made one per SIEM destination are summed under one label
	// that names no org or destination.
	for _, name := range []string{"siem_org_1_d1", "siem_org_2_d2"} {
		if _, err := js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(topology.NewLagCollector(js))
	want := `
# HELP audit_consumer_pending Events in the stream not yet delivered to the consumer.
# TYPE audit_consumer_pending gauge
audit_consumer_pending{consumer="fanout"} 0
audit_consumer_pending{consumer="ingestor"} 3
audit_consumer_pending{consumer="siem"} 6
# HELP audit_stream_messages Messages held by the stream.
# TYPE audit_stream_messages gauge
audit_stream_messages{stream="AUDIT_DEAD_LETTER"} 0
audit_stream_messages{stream="AUDIT_EVENTS"} 3
audit_stream_messages{stream="AUDIT_FANOUT"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "audit_consumer_pending", "audit_stream_messages"); err != nil {
		t.Fatal(err)
	}
}

// waitForFanout waits until AUDIT_FANOUT holds n events.
func waitForFanout(t *testing.T, js jetstream.JetStream, n uint64) {
	t.Helper()
	s, err := js.Stream(context.Background(), topology.FanoutStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		info, err := s.Info(context.Background())
		if err == nil && info.State.Msgs == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("AUDIT_FANOUT holds %d events, want %d", info.State.Msgs, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A consumer of the fan-out stream that stops reading never holds up
// AUDIT_EVENTS: once the ingestor has acknowledged and the copy is made,
// AUDIT_EVENTS lets the events go, and AUDIT_FANOUT drops its oldest when
// full.
func TestStalledFanoutConsumerDoesNotHoldTheEventsStream(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	cfg := defaults()
	cfg.FanoutMaxBytes = 16 << 10
	if err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	// A consumer that never reads.
	if _, err := js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, jetstream.ConsumerConfig{Durable: "stalled", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 1024))
	for range 64 {
		if _, err := js.Publish(ctx, "audit.events.org_1.auth.login", body); err != nil {
			t.Fatal(err)
		}
	}
	// The ingestor reads them.
	for _, name := range []string{topology.IngestorConsumer} {
		c, _ := js.Consumer(ctx, topology.EventsStream, name)
		for acked := 0; acked < 64; {
			b, err := c.Fetch(64, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range b.Messages() {
				_ = m.Ack()
				acked++
			}
		}
	}
	events, _ := js.Stream(ctx, topology.EventsStream)
	fanout, _ := js.Stream(ctx, topology.FanoutStream)
	for deadline := time.Now().Add(10 * time.Second); ; {
		ei, _ := events.Info(ctx)
		fi, _ := fanout.Info(ctx)
		if ei.State.Msgs == 0 && fi.State.LastSeq == 64 {
			if fi.State.Bytes > uint64(cfg.FanoutMaxBytes) || fi.State.FirstSeq == 1 {
				t.Fatalf("fan-out kept %d bytes from seq %d, want at most %d with the oldest dropped", fi.State.Bytes, fi.State.FirstSeq, cfg.FanoutMaxBytes)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("AUDIT_EVENTS still holds %d events (fan-out copied up to %d)", ei.State.Msgs, fi.State.LastSeq)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The owner's Repair recreates what was deleted and sets drifted settings
// back, counting each; on an intact topology it changes nothing.
func TestRepairRecreatesMissingObjectsAndCorrectsDrift(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	cfg := defaults()
	objs := cfg.Objects()
	if err := topology.Apply(ctx, js, objs); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	v := topology.NewVerifier(js, nil, reg)
	if err := v.Repair(ctx, js, objs); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "audit_topology_repairs_total"); n != 0 {
		t.Fatalf("%d repairs of an intact topology", n)
	}

	if err := js.DeleteConsumer(ctx, topology.EventsStream, topology.IngestorConsumer); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, topology.FanoutStream); err != nil {
		t.Fatal(err)
	}
	dl := cfg.DeadLetterStreamConfig()
	dl.MaxBytes /= 2
	if _, err := js.UpdateStream(ctx, dl); err != nil {
		t.Fatal(err)
	}
	if err := v.Repair(ctx, js, objs); err != nil {
		t.Fatal(err)
	}
	got := repairs(t, reg)
	for _, want := range []string{
		"recreated consumer " + topology.EventsStream + "/" + topology.IngestorConsumer,
		"recreated stream " + topology.FanoutStream,
		"corrected stream " + topology.DeadLetterStream,
	} {
		if got[want] != 1 {
			t.Errorf("repairs %v: want %q once", got, want)
		}
	}
	if n := testutil.CollectAndCount(reg, "audit_topology_repairs_total"); n != 3 {
		t.Fatalf("%d repair series, want 3", n)
	}
	if _, err := js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer); err != nil {
		t.Fatalf("ingestor consumer not recreated: %v", err)
	}
	if s, err := js.Stream(ctx, topology.FanoutStream); err != nil || len(s.CachedInfo().Config.Sources) != 1 {
		t.Fatalf("fan-out stream not recreated with its source: %v", err)
	}
	if s, _ := js.Stream(ctx, topology.DeadLetterStream); s.CachedInfo().Config.MaxBytes != cfg.DeadLetterStreamConfig().MaxBytes {
		t.Fatal("dead-letter max_bytes not set back")
	}
	// Everything is as configured again: one more pass changes nothing.
	if err := v.Repair(ctx, js, objs); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "audit_topology_repairs_total"); n != 3 {
		t.Fatalf("%d repair series after a pass over an intact topology, want 3", n)
	}
}

// repairs reads audit_topology_repairs_total as "<action> <object>" → count.
func repairs(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "audit_topology_repairs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[l["action"]+" "+l["object"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

// The log writer's consumer of earlier versions, which nothing reads any
// more and which would hold every event (interest retention), is removed
// by Ensure; an events stream without it is left as it is.
// TestEnsureLeavesTheOldLogWriterConsumer: Ensure neither creates nor
// removes the consumer of earlier versions' log writer; the upgraded
// writer removes it once it has logged the events that consumer had not
// (logwriter.LegacyConsumer).
func TestEnsureLeavesTheOldLogWriterConsumer(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	cfg := defaults()
	if err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	// As earlier versions declared it.
	if _, err := js.CreateOrUpdateConsumer(ctx, topology.EventsStream, jetstream.ConsumerConfig{
		Durable: "tlog", DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckAllPolicy,
		AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 40_000, FilterSubject: topology.EventsSubjects}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := topology.Ensure(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Consumer(ctx, topology.EventsStream, "tlog"); err != nil {
			t.Fatalf("consumer tlog after Ensure: %v, want it left in place", err)
		}
	}
	if err := js.DeleteConsumer(ctx, topology.EventsStream, "tlog"); err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, topology.EventsStream, "tlog"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("consumer tlog after Ensure: %v, want none created", err)
	}
}
