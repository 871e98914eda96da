package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/ingestapi"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// The names natsauth's permissions refer to are the ones the packages
// declare.
func TestPermissionNamesMatchTheTopology(t *testing.T) {
	for got, want := range map[string]string{
		natsauth.EventsStream:        topology.EventsStream,
		natsauth.FanoutStream:        topology.FanoutStream,
		natsauth.DeadLetterStream:    topology.DeadLetterStream,
		natsauth.IngestorConsumer:    topology.IngestorConsumer,
		natsauth.FanoutSource:        topology.FanoutSource,
		natsauth.TlogConsumer:        logwriter.LegacyConsumer,
		natsauth.TlogLeaseBucket:     topology.TlogLeaseBucket,
		natsauth.EventsSubjects:      topology.EventsSubjects,
		natsauth.CheckpointsSubjects: topology.CheckpointsSubjects,
		natsauth.DeliveriesStream:    dispatcher.DeliveriesStream,
		natsauth.AttemptsStream:      dispatcher.AttemptsStream,
		natsauth.DeliveriesSubjects:  dispatcher.DeliveriesSubjects,
		natsauth.AttemptsSubjects:    dispatcher.AttemptsSubjects,
		natsauth.DispatcherConsumer:  dispatcher.FanoutConsumer,
		natsauth.SettingsBucket:      orgsettings.Bucket,
		natsauth.EndpointsBucket:     endpoints.Bucket,
		natsauth.DestinationsBucket:  destinations.Bucket,
		natsauth.StatusBucket:        destinations.StatusBucket,
		natsauth.ServiceKeysBucket:   ingestapi.KeysBucket,
		natsauth.RetriesBucket:       dispatcher.RetriesBucket,
	} {
		if got != want {
			t.Errorf("natsauth has %q where the topology has %q", got, want)
		}
	}
}

// attacker is a connection that records the permission violations the
// server reports to it.
type attacker struct {
	nc   *nats.Conn
	mu   sync.Mutex
	errs []string
}

func newAttacker(t *testing.T, srv *natsembed.Server, id natsauth.Identity) *attacker {
	t.Helper()
	a := &attacker{}
	opts, err := natsauth.Options(id)
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		a.mu.Lock()
		a.errs = append(a.errs, err.Error())
		a.mu.Unlock()
	}))
	a.nc, err = srv.Connect("attacker/"+string(id.Role), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.nc.Close)
	return a
}

func (a *attacker) violated(kind, subject string) bool {
	want := fmt.Sprintf("Permissions Violation for %s to %q", kind, subject)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.errs {
		if strings.Contains(e, want) {
			return true
		}
	}
	return false
}

// attack is one thing a role must not be able to do.
type attack struct {
	name    string
	sub     bool // a subscription, not a publish
	request bool // a publish expecting a reply (JetStream API, stored publish)
	subject string
	header  nats.Header
	body    []byte
}

// try runs at and reports how it ended: "refused" (the server reported a
// permission violation for the subject), "api error: ..." (it reached
// JetStream, which refused it), or "done" (it worked).
func (a *attacker) try(at attack) string {
	// A refusal arrives as an asynchronous error right after the flush;
	// a request waits for its reply or its refusal.
	deadline := time.Now().Add(2 * time.Second)
	if at.request {
		deadline = time.Now().Add(10 * time.Second)
	}
	kind := "Publish"
	var reply chan *nats.Msg
	switch {
	case at.sub:
		kind = "Subscription"
		sub, err := a.nc.SubscribeSync(at.subject)
		if err != nil {
			return "refused: " + err.Error()
		}
		defer sub.Unsubscribe() //nolint:errcheck
		_ = a.nc.Flush()
	case at.request:
		reply = make(chan *nats.Msg, 1)
		go func() {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			m, err := a.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: at.subject, Header: at.header, Data: at.body})
			if err == nil {
				reply <- m
			}
		}()
	default:
		_ = a.nc.PublishMsg(&nats.Msg{Subject: at.subject, Header: at.header, Data: at.body})
		_ = a.nc.Flush()
	}
	for time.Now().Before(deadline) {
		if a.violated(kind, at.subject) {
			return "refused"
		}
		select {
		case m := <-reply:
			var r struct {
				Error *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			if json.Unmarshal(m.Data, &r) == nil && r.Error != nil {
				return "api error: " + r.Error.Description
			}
			return "done: " + string(m.Data)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "done (no violation reported)"
}

func cfgJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// attacks lists what a role must not do, except what its job needs (and
// the documented residual capabilities).
// forgedCheckpoint is a checkpoint of org_victim's log that claims an
// empty-looking root, signed by a key that is not the deployment's.
func forgedCheckpoint(t *testing.T) witness.Record {
	t.Helper()
	skey, _, err := tlog.GenerateKey("takumo-audit")
	if err != nil {
		t.Fatal(err)
	}
	s, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	note, err := s.Sign(tlog.Origin("takumo-audit", "org_victim"), 1, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return witness.FromNote("org_victim", tlog.Origin("takumo-audit", "org_victim"), 1, s.KeyHash(), time.Now(), note)
}

func attacks(t *testing.T, r natsauth.Role, eventsCfg, fanoutCfg jetstream.StreamConfig, forged witness.Record) []attack {
	t.Helper()
	const api = "$JS.API."
	req := func(name, subject string, body []byte) attack {
		return attack{name: name, request: true, subject: subject, body: body}
	}
	ev := producer.AuthLogin("org_victim", producer.User("u_1", "Eve", "eve@example.com"), "password")
	ev.OccurredAt = time.Now().Add(-400 * 24 * time.Hour)
	evBody := cfgJSON(t, ev)
	consumerCfg := func(name, filter string) []byte {
		return cfgJSON(t, map[string]any{"stream_name": "x", "config": jetstream.ConsumerConfig{Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy}})
	}
	shrunkFanout := fanoutCfg
	shrunkFanout.MaxAge = time.Minute
	shrunkEvents := eventsCfg
	shrunkEvents.MaxBytes = 1 << 20

	var out []attack
	// Read every tenant's events.
	out = append(out,
		req("create a consumer on AUDIT_EVENTS", api+"CONSUMER.CREATE.AUDIT_EVENTS.evil", consumerCfg("evil", "")),
		req("create a filtered consumer on AUDIT_EVENTS", api+"CONSUMER.CREATE.AUDIT_EVENTS.evil.audit.events.org_victim.>", consumerCfg("evil", "audit.events.org_victim.>")),
		req("create an ephemeral consumer on AUDIT_EVENTS", api+"CONSUMER.CREATE.AUDIT_EVENTS", consumerCfg("", "")),
		req("create a durable on AUDIT_EVENTS (old API)", api+"CONSUMER.DURABLE.CREATE.AUDIT_EVENTS.evil", consumerCfg("evil", "")),
		req("create an unfiltered consumer on AUDIT_FANOUT", api+"CONSUMER.CREATE.AUDIT_FANOUT.evil", consumerCfg("evil", "")),
		req("create an ephemeral consumer on AUDIT_FANOUT", api+"CONSUMER.CREATE.AUDIT_FANOUT", consumerCfg("", "")),
		req("get a message of AUDIT_FANOUT", api+"STREAM.MSG.GET.AUDIT_FANOUT", []byte(`{"seq":1}`)),
		req("direct get from AUDIT_EVENTS", api+"DIRECT.GET.AUDIT_EVENTS", []byte(`{"seq":1}`)),
		req("direct get from AUDIT_FANOUT", api+"DIRECT.GET.AUDIT_FANOUT.audit.events.org_victim.auth.login", nil),
		req("get a dead letter", api+"STREAM.MSG.GET.AUDIT_DEAD_LETTER", []byte(`{"seq":1}`)),
		attack{name: "subscribe to every event", sub: true, subject: "audit.events.>"},
		attack{name: "subscribe to the fan-out copy", sub: true, subject: "audit.fanout.deliver"},
		attack{name: "subscribe to everything", sub: true, subject: ">"},
	)
	out = append(out,
		attack{name: "acknowledge on the fan-out source", subject: "$JS.ACK.AUDIT_EVENTS.fanout.1.1.1.1.1", body: []byte("+ACK")},
		attack{name: "answer the fan-out source's flow control", subject: "$JS.FC.AUDIT_EVENTS.fanout.1", body: nil},
	)
	// The owner's repair: the consumer that holds a deleted consumer's
	// events meanwhile (taking it over, or deleting it, would let them
	// go), and the server's announcement of a deletion, which the owner
	// waits for before it creates a stream again.
	hold := topology.HoldName(topology.IngestorConsumer)
	out = append(out,
		req("create the ingestor's holding consumer", api+"CONSUMER.CREATE.AUDIT_EVENTS."+hold, consumerCfg(hold, "")),
		req("delete the ingestor's holding consumer", api+"CONSUMER.DELETE.AUDIT_EVENTS."+hold, nil),
		req("fetch from the ingestor's holding consumer", api+"CONSUMER.MSG.NEXT.AUDIT_EVENTS."+hold, []byte(`{"batch":1,"expires":1000000000}`)),
		attack{name: "announce the deletion of AUDIT_FANOUT", subject: "$JS.EVENT.ADVISORY.STREAM.DELETED." + topology.FanoutStream, body: []byte(`{"stream":"AUDIT_FANOUT"}`)},
		attack{name: "announce the deletion of AUDIT_EVENTS", subject: "$JS.EVENT.ADVISORY.STREAM.DELETED." + topology.EventsStream, body: []byte(`{"stream":"AUDIT_EVENTS"}`)},
	)
	// No role reads the events through the consumer name the log writer
	// of earlier versions read them with (the log writer included: the
	// ingestor of its process hands it the events now; the rows below also
	// refuse every role to recreate that consumer).
	out = append(out,
		req("fetch from the old log writer's consumer", api+"CONSUMER.MSG.NEXT.AUDIT_EVENTS.tlog", []byte(`{"batch":1,"expires":1000000000}`)),
		attack{name: "acknowledge on the old log writer's consumer", subject: "$JS.ACK.AUDIT_EVENTS.tlog.1.1.1.1.1", body: []byte("+ACK")},
	)
	if r != natsauth.Tlog {
		// The log writer's catch-up confirms stored events against their
		// messages, and then removes the old consumer.
		out = append(out,
			req("get a message of AUDIT_EVENTS", api+"STREAM.MSG.GET.AUDIT_EVENTS", []byte(`{"seq":1}`)),
			req("delete the old log writer's consumer", api+"CONSUMER.DELETE.AUDIT_EVENTS.tlog", nil),
		)
		// Silence the log: take over or free the single writer's lease.
		lease := "$KV." + natsauth.TlogLeaseBucket + ".writer"
		out = append(out,
			req("take the log writer's lease", lease, []byte("intruder")),
			attack{name: "delete the log writer's lease", request: true, subject: lease, header: nats.Header{"KV-Operation": []string{"DEL"}}},
			attack{name: "purge the log writer's lease", request: true, subject: lease, header: nats.Header{"KV-Operation": []string{"PURGE"}, "Nats-Rollup": []string{"sub"}}},
		)
	} else {
		// The log writer reads and writes its lease and nothing else.
		for _, b := range []string{natsauth.SettingsBucket, natsauth.EndpointsBucket, natsauth.DestinationsBucket, natsauth.StatusBucket} {
			out = append(out,
				req("read bucket "+b, api+"DIRECT.GET.KV_"+b+".$KV."+b+".org_victim", nil),
				req("watch bucket "+b, api+"CONSUMER.CREATE.KV_"+b, consumerCfg("", "")),
			)
		}
		out = append(out, req("record an action", "audit.events.org_victim.audit.webhook_disabled", evBody))
	}
	// Take or terminate the ingestor's deliveries (and those of a consumer
	// under the old log writer's name) through the acknowledgement subject
	// of a stream the role may acknowledge on:
	// $JS.ACK.<stream>.<consumer>.<other stream>.<seq>... is what the
	// server routes to <consumer>, with <seq> as the stream sequence, so a
	// subject of the v2 form $JS.ACK.*.*.<other stream>.> must not be
	// allowed.
	for _, c := range []string{natsauth.IngestorConsumer, "tlog"} {
		if r == natsauth.Ingestor && c == natsauth.IngestorConsumer {
			continue
		}
		for _, s := range []string{natsauth.FanoutStream, natsauth.DeliveriesStream, natsauth.EventsStream} {
			pre := "$JS.ACK." + natsauth.EventsStream + "." + c + "." + s
			out = append(out,
				attack{name: "terminate a delivery of " + c + " through " + s + "'s acks", subject: pre + ".1.1.0.0", body: []byte("+TERM")},
				attack{name: "take deliveries of " + c + " through " + s + "'s acks", subject: pre + ".0.0.0.0", body: []byte(`+NXT {"batch":10}`)},
			)
		}
	}
	if r != natsauth.Ingestor {
		out = append(out, attack{name: "acknowledge on the ingestor's consumer", subject: "$JS.ACK.AUDIT_EVENTS.ingestor.1.1.1.1.1", body: []byte("+ACK")})
		out = append(out, req("fetch from the ingestor's consumer", api+"CONSUMER.MSG.NEXT.AUDIT_EVENTS.ingestor", []byte(`{"batch":1,"expires":1000000000}`)))
	}
	if r != natsauth.Dispatcher {
		out = append(out,
			req("fetch from the dispatcher's consumer", api+"CONSUMER.MSG.NEXT.AUDIT_FANOUT.webhook-dispatcher", []byte(`{"batch":1,"expires":1000000000}`)),
			attack{name: "acknowledge on the dispatcher's consumer", subject: "$JS.ACK.AUDIT_FANOUT.webhook-dispatcher.1.1.1.1.1", body: []byte("+ACK")},
			req("repoint the dispatcher's consumer", api+"CONSUMER.CREATE.AUDIT_FANOUT.webhook-dispatcher.audit.events.org_victim.>", consumerCfg("webhook-dispatcher", "audit.events.org_victim.>")),
		)
	}
	// Read another role's replies.
	for _, other := range natsauth.Roles {
		if other != r && other != natsauth.Admin && other != natsauth.Producer {
			out = append(out, attack{name: "read " + string(other) + "'s replies", sub: true, subject: other.InboxPrefix() + ".>"})
		}
	}
	// Publish events for any org, back-dated.
	if r != natsauth.Producer && r != natsauth.API {
		out = append(out, req("publish a back-dated event for another org", "audit.events.org_victim.auth.login", evBody))
	}
	// Forge the log's own records: a purge, an erasure, a settings change.
	if r != natsauth.API {
		out = append(out,
			req("forge a retention purge record", "audit.events.org_victim.audit.retention_purged", evBody),
			req("forge an erasure record", "audit.events.org_victim.audit.subject_erased", evBody),
			req("forge a settings record", "audit.events.org_victim.audit.settings_updated", evBody),
		)
	}
	// Write the buckets.
	for _, b := range []string{natsauth.SettingsBucket, natsauth.EndpointsBucket, natsauth.DestinationsBucket, natsauth.StatusBucket, natsauth.ServiceKeysBucket, natsauth.RetriesBucket} {
		if (r == natsauth.API && b != natsauth.RetriesBucket) || (r == natsauth.Dispatcher && (b == natsauth.EndpointsBucket || b == natsauth.RetriesBucket)) || (r == natsauth.Forwarder && b == natsauth.StatusBucket) {
			continue
		}
		key := "$KV." + b + ".org_victim.x"
		if b == natsauth.SettingsBucket {
			key = "$KV." + b + ".org_victim"
		}
		out = append(out,
			req("put a key in "+b, key, []byte(`{"org_id":"org_victim","plan":"free","url":"https://evil.example"}`)),
			attack{name: "delete a key in " + b, request: true, subject: key, header: nats.Header{"KV-Operation": []string{"DEL"}}},
			attack{name: "purge a key in " + b, request: true, subject: key, header: nats.Header{"KV-Operation": []string{"PURGE"}, "Nats-Rollup": []string{"sub"}}},
		)
	}
	// Send a forged checkpoint to the org's witnesses, and read another
	// org's checkpoints.
	if r != natsauth.Tlog {
		out = append(out, req("publish a forged checkpoint", witness.Subject("org_victim", forged.KeyID), cfgJSON(t, forged)))
	}
	if r != natsauth.Forwarder && r != natsauth.API {
		out = append(out, req("create a consumer of another org's checkpoints", api+"CONSUMER.CREATE.AUDIT_FANOUT.evil.audit.checkpoints.org_victim.>", consumerCfg("evil", "audit.checkpoints.org_victim.>")))
	}
	// Make the dispatcher deliver a forged payload.
	if r != natsauth.Dispatcher && r != natsauth.API {
		out = append(out, req("publish to the deliveries stream", "audit.webhook.deliveries.org_victim.ep_1", []byte(`{"forged":true}`)))
	}
	// Change or remove the topology.
	out = append(out,
		req("shrink AUDIT_FANOUT's MaxAge", api+"STREAM.UPDATE.AUDIT_FANOUT", cfgJSON(t, shrunkFanout)),
		req("shrink AUDIT_EVENTS' MaxBytes", api+"STREAM.UPDATE.AUDIT_EVENTS", cfgJSON(t, shrunkEvents)),
		req("create a stream", api+"STREAM.CREATE.EVIL", cfgJSON(t, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"audit.>"}})),
		req("delete the ingestor's consumer", api+"CONSUMER.DELETE.AUDIT_EVENTS.ingestor", nil),
		req("delete the fan-out source", api+"CONSUMER.DELETE.AUDIT_EVENTS.fanout", nil),
		req("repoint the old log writer's consumer at one org", api+"CONSUMER.CREATE.AUDIT_EVENTS.tlog.audit.events.org_victim.>", consumerCfg("tlog", "audit.events.org_victim.>")),
		req("recreate the old log writer's consumer", api+"CONSUMER.CREATE.AUDIT_EVENTS.tlog", consumerCfg("tlog", "")),
		req("recreate the old log writer's consumer (old API)", api+"CONSUMER.DURABLE.CREATE.AUDIT_EVENTS.tlog", consumerCfg("tlog", "")),
		req("shorten the log writer's lease TTL", api+"STREAM.UPDATE.KV_"+natsauth.TlogLeaseBucket, cfgJSON(t, jetstream.StreamConfig{Name: "KV_" + natsauth.TlogLeaseBucket, Subjects: []string{"$KV." + natsauth.TlogLeaseBucket + ".>"}, MaxAge: time.Millisecond})),
		req("delete the dispatcher's consumer", api+"CONSUMER.DELETE.AUDIT_FANOUT.webhook-dispatcher", nil),
		req("delete AUDIT_EVENTS", api+"STREAM.DELETE.AUDIT_EVENTS", nil),
		req("delete AUDIT_FANOUT", api+"STREAM.DELETE.AUDIT_FANOUT", nil),
		req("delete the dead-letter stream", api+"STREAM.DELETE.AUDIT_DEAD_LETTER", nil),
		req("purge the dead-letter stream", api+"STREAM.PURGE.AUDIT_DEAD_LETTER", nil),
		req("delete the deliveries stream", api+"STREAM.DELETE.AUDIT_WEBHOOK_DELIVERIES", nil),
		req("delete a message of AUDIT_EVENTS", api+"STREAM.MSG.DELETE.AUDIT_EVENTS", []byte(`{"seq":1}`)),
		req("delete a message of AUDIT_FANOUT", api+"STREAM.MSG.DELETE.AUDIT_FANOUT", []byte(`{"seq":1}`)),
		req("delete the log writer's lease message", api+"STREAM.MSG.DELETE.KV_"+natsauth.TlogLeaseBucket, []byte(`{"seq":1}`)),
		// Stall or rewind a consumer without changing its configuration.
		req("pause the ingestor's consumer", api+"CONSUMER.PAUSE.AUDIT_EVENTS.ingestor", []byte(`{"pause_until":"2999-01-01T00:00:00Z"}`)),
		req("pause the old log writer's consumer", api+"CONSUMER.PAUSE.AUDIT_EVENTS.tlog", []byte(`{"pause_until":"2999-01-01T00:00:00Z"}`)),
		req("pause the dispatcher's consumer", api+"CONSUMER.PAUSE.AUDIT_FANOUT.webhook-dispatcher", []byte(`{"pause_until":"2999-01-01T00:00:00Z"}`)),
		req("move the old log writer's consumer past events", api+"CONSUMER.RESET.AUDIT_EVENTS.tlog", []byte(`{"seq":1000000}`)),
		req("move the ingestor's consumer past events", api+"CONSUMER.RESET.AUDIT_EVENTS.ingestor", []byte(`{"seq":1000000}`)),
		// The server's own services: every client's connection details.
		req("list the account's connections", "$SYS.REQ.ACCOUNT.PING.CONNZ", nil),
	)
	// Read the service keys' hashes, or plant a key of one's own.
	if r != natsauth.API {
		out = append(out,
			req("direct get from the service keys", api+"DIRECT.GET.KV_"+natsauth.ServiceKeysBucket+".$KV."+natsauth.ServiceKeysBucket+".sk_x", nil),
			req("get a message of the service keys", api+"STREAM.MSG.GET.KV_"+natsauth.ServiceKeysBucket, []byte(`{"seq":1}`)),
			req("watch the service keys", api+"CONSUMER.CREATE.KV_"+natsauth.ServiceKeysBucket, consumerCfg("", "")),
			req("plant a service key", "$KV."+natsauth.ServiceKeysBucket+".sk_01EVIL", []byte(`{"id":"sk_01EVIL","service":"evil","orgs":["*"],"hash":"00"}`)),
		)
	}
	for _, b := range []string{natsauth.SettingsBucket, natsauth.EndpointsBucket, natsauth.DestinationsBucket, natsauth.StatusBucket, natsauth.ServiceKeysBucket, natsauth.RetriesBucket, natsauth.TlogLeaseBucket} {
		out = append(out,
			req("purge bucket "+b, api+"STREAM.PURGE.KV_"+b, nil),
			req("delete bucket "+b, api+"STREAM.DELETE.KV_"+b, nil),
		)
	}
	return out
}

// busState is everything an attack could change.
type busState map[string]string

func takeSnapshot(t *testing.T, js jetstream.JetStream) busState {
	t.Helper()
	ctx := context.Background()
	s := busState{}
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s["stream "+name] = fmt.Sprintf("%s msgs=%d bytes=%d first=%d last=%d consumers=%d",
			cfgJSON(t, info.Config), info.State.Msgs, info.State.Bytes, info.State.FirstSeq, info.State.LastSeq, info.State.Consumers)
		for c := range st.ListConsumers(ctx).Info() {
			if name == topology.EventsStream && c.Name == topology.FanoutSource {
				// The server acknowledges the sourced copies on its own
				// schedule (flow control); only what it delivered counts.
				s["consumer "+name+"/"+c.Name] = fmt.Sprintf("%s delivered=%d", cfgJSON(t, c.Config), c.Delivered.Stream)
				continue
			}
			s["consumer "+name+"/"+c.Name] = fmt.Sprintf("%s delivered=%d acked=%d pending=%d ackpending=%d",
				cfgJSON(t, c.Config), c.Delivered.Stream, c.AckFloor.Stream, c.NumPending, c.NumAckPending)
		}
		if strings.HasPrefix(name, "KV_") {
			kv, err := js.KeyValue(ctx, strings.TrimPrefix(name, "KV_"))
			if err != nil {
				t.Fatal(err)
			}
			keys, err := kv.ListKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for k := range keys.Keys() {
				e, err := kv.Get(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				s["key "+name+"/"+k] = fmt.Sprintf("rev=%d %s", e.Revision(), e.Value())
			}
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// attackedBus starts a server with every role's identity and, as the
// topology owner does with the admin identity, declares every stream,
// consumer and bucket.
func attackedBus(t *testing.T) (*natsembed.Server, natsauth.Keyring, jetstream.JetStream, Config) {
	t.Helper()
	srv, keys := natstest.StartServer(t, natsembed.Config{Listen: "127.0.0.1:0"})
	admin := keys[natsauth.Admin]
	_, ajs := natstest.Connect(t, srv, admin)
	cfg := baseConfig(t)
	cfg.NATSURL = srv.ClientURL()
	cfg.NATSCreds = filepath.Join(t.TempDir(), "admin.nk")
	if err := natsauth.WriteSeedFile(cfg.NATSCreds, admin); err != nil {
		t.Fatal(err)
	}
	if err := ApplyTopology(context.Background(), cfg, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	return srv, keys, ajs, cfg
}

// With no credentials nobody connects; with each role's credentials every
// attack outside the role's job is refused by the server, and afterwards
// every stream's configuration and messages, every consumer and every key
// are as they were. The same attacks as the admin identity are not
// refused, so the refusals come from the permissions.
func TestAttacksOnTheBusAreRefused(t *testing.T) {
	srv, keys, ajs, cfg := attackedBus(t)
	ctx := context.Background()
	admin := keys[natsauth.Admin]

	// Some content in every stream and bucket.
	_, pjs := natstest.Connect(t, srv, keys[natsauth.Producer])
	prod, err := producer.New(pjs)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := prod.Emit(ctx, producer.AuthLogin("org_victim", producer.User("u_1", "Ada", "ada@example.com"), "password")); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{natsauth.SettingsBucket, natsauth.EndpointsBucket, natsauth.DestinationsBucket, natsauth.StatusBucket, natsauth.ServiceKeysBucket, natsauth.RetriesBucket} {
		kv, err := ajs.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "org_victim.x", []byte(`{"kept":true}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ajs.Publish(ctx, "audit.dead_letter.ingestor", []byte("dead")); err != nil {
		t.Fatal(err)
	}
	if _, err := ajs.Publish(ctx, "audit.webhook.deliveries.org_victim.ep_1", []byte("pending")); err != nil {
		t.Fatal(err)
	}
	waitForFanout(ctx, t, ajs, 3)
	events, err := ajs.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	fanout, err := ajs.Stream(ctx, topology.FanoutStream)
	if err != nil {
		t.Fatal(err)
	}
	eventsCfg, fanoutCfg := events.CachedInfo().Config, fanout.CachedInfo().Config
	before := takeSnapshot(t, ajs)

	// No credentials: no connection, in process or over TCP.
	if nc, err := srv.Connect("anonymous"); err == nil {
		nc.Close()
		t.Error("anonymous in-process connection accepted")
	}
	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Error("anonymous TCP connection accepted")
	}
	// A key the server does not know.
	stranger, err := natsauth.NewIdentity(natsauth.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if opts, err := natsauth.Options(stranger); err != nil {
		t.Fatal(err)
	} else if nc, err := srv.Connect("stranger", opts...); err == nil {
		nc.Close()
		t.Error("unknown nkey accepted")
	}

	// A forged checkpoint is refused on the bus, and would not verify
	// anyway: the deployment's signing key is not on the bus.
	forged := forgedCheckpoint(t)
	skey, err := tlog.LoadOrCreateDevKey(cfg.DataDir, "takumo-audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := tlog.NewVerifiers(signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vs.OpenCheckpoint([]byte(forged.Note), forged.Origin); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("a checkpoint signed by another key verified: %v", err)
	}
	for _, r := range natsauth.Roles[1:] {
		t.Run(string(r), func(t *testing.T) {
			a := newAttacker(t, srv, keys[r])
			for _, at := range attacks(t, r, eventsCfg, fanoutCfg, forged) {
				if got := a.try(at); got != "refused" {
					t.Errorf("%s (%s): %s", at.name, at.subject, got)
				}
			}
		})
	}
	after := takeSnapshot(t, ajs)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed:\n before %s\n after  %s", k, v, after[k])
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s appeared: %s", k, v)
		}
	}

	// A role that watches a bucket may create consumers on its stream (a
	// watch is one), with any deliver subject; pointed at the events or
	// deliveries subjects they inject nothing: the server delivers a push
	// consumer's messages only to subscribers, not into streams.
	for _, c := range []struct {
		role   natsauth.Role
		bucket string
	}{{natsauth.Dispatcher, natsauth.EndpointsBucket}, {natsauth.Forwarder, natsauth.StatusBucket}, {natsauth.Ingestor, natsauth.SettingsBucket}} {
		_, js := natstest.Connect(t, srv, keys[c.role])
		for i, subj := range []string{"audit.events.org_victim.auth.login", "audit.webhook.deliveries.org_victim.ep_1"} {
			if _, err := js.CreateOrUpdateConsumer(ctx, "KV_"+c.bucket, jetstream.ConsumerConfig{
				Durable: fmt.Sprintf("inject%d", i), DeliverSubject: subj, AckPolicy: jetstream.AckNonePolicy}); err != nil {
				t.Logf("%s: push consumer on %s refused: %v", c.role, c.bucket, err)
			}
		}
	}
	// The roles that create SIEM destinations' consumers on AUDIT_FANOUT
	// may give them any deliver subject. Pointed at an acknowledgement
	// subject of the ingestor's consumer, what they send (events, and
	// heartbeats and flow-control messages, whose empty bodies an
	// acknowledgement would be) acknowledges nothing the ingestor holds.
	_, ijs := natstest.Connect(t, srv, keys[natsauth.Ingestor])
	ic, err := ijs.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
	if err != nil {
		t.Fatal(err)
	}
	held, err := ic.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var last *jetstream.MsgMetadata
	for m := range held.Messages() {
		if last, err = m.Metadata(); err != nil {
			t.Fatal(err)
		}
	}
	if last == nil || last.NumPending != 0 {
		t.Fatalf("the ingestor holds %+v, want all 3 events", last)
	}
	ingestorKey := "consumer " + topology.EventsStream + "/" + topology.IngestorConsumer
	holding := takeSnapshot(t, ajs)[ingestorKey]
	ackSubject := fmt.Sprintf("$JS.ACK.%s.%s.1.%d.%d.0.0", topology.EventsStream, topology.IngestorConsumer, last.Sequence.Stream, last.Sequence.Consumer)
	for i, r := range []natsauth.Role{natsauth.Forwarder, natsauth.API} {
		_, js := natstest.Connect(t, srv, keys[r])
		if _, err := js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, jetstream.ConsumerConfig{
			Name: fmt.Sprintf("acker%d", i), FilterSubject: "audit.*.org_victim.>", DeliverSubject: ackSubject,
			IdleHeartbeat: time.Second, FlowControl: true, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Logf("%s: push consumer on %s refused: %v", r, topology.FanoutStream, err)
		}
	}
	time.Sleep(2 * time.Second)
	injected := takeSnapshot(t, ajs)
	for _, k := range []string{"stream " + topology.EventsStream, "stream " + dispatcher.DeliveriesStream} {
		if injected[k] != before[k] {
			t.Errorf("a push consumer of a bucket wrote into %s:\n before %s\n after  %s", k, before[k], injected[k])
		}
	}
	if injected[ingestorKey] != holding {
		t.Errorf("a push consumer of %s acknowledged the ingestor's events:\n before %s\n after  %s", topology.FanoutStream, holding, injected[ingestorKey])
	}

	// The dispatcher may record exactly one action.
	d := newAttacker(t, srv, keys[natsauth.Dispatcher])
	disabled := cfgJSON(t, producer.AuditWebhookDisabled("org_victim", dispatcher.Actor, producer.Webhook("ep_1", ""), "failing"))
	if got := d.try(attack{request: true, subject: "audit.events.org_victim.audit.webhook_disabled", body: disabled}); !strings.HasPrefix(got, "done") {
		t.Errorf("dispatcher recording a disabled webhook: %s", got)
	}

	// The attacks are real: the admin identity is not refused.
	adm := newAttacker(t, srv, admin)
	for _, at := range attacks(t, natsauth.Producer, eventsCfg, fanoutCfg, forged) {
		if got := adm.try(at); got == "refused" {
			t.Errorf("admin: %s refused", at.name)
		}
	}
}

// The docker-compose deployment runs NATS with the repository's server
// configuration and the authorization block auditd nats-config prints:
// every role a user, JetStream on, no monitoring port, and no NATS port
// published to the host.
func TestComposeRunsNATSWithAuthentication(t *testing.T) {
	base, err := os.ReadFile("../../../deploy/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := natsauth.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := natsauth.ServerConfig(keys)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := strings.ReplaceAll(string(base), "/data", filepath.Join(dir, "js"))
	if err := os.WriteFile(filepath.Join(dir, "nats-server.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Nkeys) != len(natsauth.Roles) || !opts.JetStream || opts.HTTPPort != 0 || opts.NoAuthUser != "" {
		t.Errorf("users %d, jetstream %v, monitoring port %d, no-auth user %q", len(opts.Nkeys), opts.JetStream, opts.HTTPPort, opts.NoAuthUser)
	}
	compose, err := os.ReadFile("../../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"4222:", "8222", "6222"} {
		if strings.Contains(string(compose), port) {
			t.Errorf("docker-compose.yml publishes %s", port)
		}
	}
	for _, want := range []string{"nats-server.conf", "auth.conf", "AUDIT_NATS_CREDS: /run/secrets/nats.nk", `command: ["topology"]`, "admin.nk:/run/secrets/nats.nk"} {
		if !strings.Contains(string(compose), want) {
			t.Errorf("docker-compose.yml lacks %s", want)
		}
	}
}

// rawRequest sends one HTTP/1.1 request with target written as given (no
// client cleans or re-encodes it) and returns the answer.
func rawRequest(t *testing.T, addr, method, target, bearer, body string) (int, http.Header) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\nContent-Type: application/json\r\n"
	if bearer != "" {
		req += "Authorization: Bearer " + bearer + "\r\n"
	}
	req += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header
}

// The single binary serves the read, ingest and management APIs on one
// listener. A method a path does not take is 405 with every method the
// path does take (the read API's GET and the ingest API's POST of
// /v1/events included); HEAD and OPTIONS write nothing; dot segments,
// encoded slashes and double-encoded paths reach no write route without
// its credential. Nothing any of these requests sent was stored.
func TestAttacksOnTheHTTPRoutesAreRefused(t *testing.T) {
	cfg := baseConfig(t)
	cfg.DefaultPlan = "enterprise"
	base := startAuditd(t, cfg)
	mint := func(perms ...string) string { return adminToken(t, cfg, perms...) }
	manage, read := mint(auditapi.PermManage), mint(auditapi.PermRead)
	code, body := call(t, "POST", base+"/v1/service-keys", manage, []byte(`{"service": "billing"}`))
	var sk auditapi.CreatedServiceKey
	if code != http.StatusCreated || json.Unmarshal(body, &sk) != nil {
		t.Fatalf("create key: %d %s", code, body)
	}
	ev := `{"events": [{"org_id": "org_acme", "action": "member.invited", "actor": {"type": "user", "id": "usr_mallory"},
		"targets": [{"type": "user", "id": "usr_x"}], "details": {"email": "x@example.com", "role": "owner"}}]}`

	for _, tc := range []struct {
		method, target string
		status         int
		allow          string
	}{
		{"DELETE", "/v1/events", 405, "GET, HEAD, POST"},
		{"PUT", "/v1/events", 405, "GET, HEAD, POST"},
		{"PATCH", "/v1/events", 405, "GET, HEAD, POST"},
		{"OPTIONS", "/v1/events", 405, "GET, HEAD, POST"},
		{"DELETE", "/v1/events/01J0000000000000000000000", 405, "GET, HEAD"},
		{"PUT", "/v1/service-keys", 405, "GET, HEAD, POST"},
		{"POST", "/v1/service-keys/" + sk.ID, 405, "DELETE, GET, HEAD"},
		{"POST", "/v1/settings", 405, "GET, HEAD, PUT"},
		{"DELETE", "/v1/settings", 405, "GET, HEAD, PUT"},
		{"GET", "/v1/orgs/org_acme/erasures", 405, "POST"},
		{"DELETE", "/v1/catalog", 405, "GET, HEAD"},
		{"PUT", "/v1/webhooks/endpoints", 405, "GET, HEAD, POST"},
		{"PUT", "/v1/webhooks/endpoints/wh_1/rotate-secret", 405, "POST"},
		{"DELETE", "/v1/integrity/checkpoint", 405, "GET, HEAD"},
		{"PUT", "/v1/siem/destinations/d_1/replay", 405, "POST"},
		{"POST", "/v1/siem/destinations/d_1/replay", 401, ""},
		{"POST", "/v1/webhooks/endpoints", 401, ""},
		{"POST", "/v1/webhooks/endpoints/wh_1/rotate-secret", 401, ""},
		{"POST", "/v1/orgs/org_acme/retention/purge", 403, ""},
		{"POST", "/v1/orgs/org_acme/erasures", 403, ""},
		{"HEAD", "/v1/events", 401, ""},
		{"HEAD", "/v1/service-keys", 401, ""},
		{"POST", "/v1/events", 401, ""},
	} {
		code, h := rawRequest(t, cfg.HTTPAddr, tc.method, tc.target, "", ev)
		if code != tc.status || h.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q", tc.method, tc.target, code, h.Get("Allow"), tc.status, tc.allow)
		}
	}
	// Dot segments, encoded slashes and double encoding, without a
	// credential and with the service key (which writes events only).
	for _, target := range []string{
		"/v1/catalog/../events", "/v1/catalog/%2e%2e/events", "/v1/catalog/%252e%252e/events", "//v1/events",
		"/v1/events/..%2F..%2Fv1%2Fevents", "/v1/events%2F", "/v1/./events", "/v1/events/", "/V1/events",
		"/v1/service-keys/../service-keys", "/v1/service-keys/%2e%2e", "/v1/service-keys/" + sk.ID + "%2F..",
		"/v1/orgs/org_acme/retention/../erasures", "/v1/orgs/org_acme%2Fretention/purge", "/v1/settings/..;/settings",
		"/assets/..%2F..%2Fv1%2Fevents",
	} {
		for _, method := range []string{"POST", "PUT", "DELETE"} {
			for _, bearer := range []string{"", sk.Key} {
				if code, h := rawRequest(t, cfg.HTTPAddr, method, target, bearer, ev); code < 300 || code >= 400 && code != 401 && code != 404 && code != 405 {
					t.Errorf("%s %s (credential %t): %d %v", method, target, bearer != "", code, h)
				}
			}
		}
	}
	// The service key writes events only: every management route refuses it.
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/settings", `{"custom_retention_days": 365}`},
		{"POST", "/v1/service-keys", `{"service": "payments"}`},
		{"DELETE", "/v1/service-keys/" + sk.ID, ""},
		{"POST", "/v1/webhooks/endpoints", `{"url": "http://127.0.0.1:9/"}`},
		{"GET", "/v1/export?format=ndjson", ""},
	} {
		if code, _ := rawRequest(t, cfg.HTTPAddr, c.method, c.path, sk.Key, c.body); code != 401 {
			t.Errorf("%s %s with the service key: %d, want 401", c.method, c.path, code)
		}
	}
	// The service key writes one event now; once it is readable, it is the
	// only one besides the key's creation record: nothing above was stored.
	code, body = call(t, "POST", base+"/v1/events", sk.Key, []byte(ev))
	var resp auditapi.IngestResponse
	if code != 200 || json.Unmarshal(body, &resp) != nil || resp.Accepted != 1 {
		t.Fatalf("write with the key: %d %s", code, body)
	}
	var page struct {
		Data []struct {
			ID     string `json:"id"`
			Action string `json:"action"`
		} `json:"data"`
	}
	waitFor(t, "the key's event readable", func() bool {
		code, body := call(t, "GET", base+"/v1/events/"+resp.Results[0].ID, read, nil)
		return code == 200 && body != nil
	})
	if code, body := call(t, "GET", base+"/v1/events?limit=50", read, nil); code != 200 || json.Unmarshal(body, &page) != nil || len(page.Data) != 2 {
		t.Fatalf("events after the attacks: %d %s", code, body)
	}
	if code, body := call(t, "GET", base+"/v1/service-keys", manage, nil); code != 200 || strings.Count(string(body), `"id"`) != 1 {
		t.Fatalf("service keys after the attacks: %d %s", code, body)
	}
}

// A role allowed to publish on a durable stream's subjects cannot use
// JetStream's headers to remove, expire, schedule, count or batch
// messages there, nor replace a stored event by publishing another body
// under its id: every such publish is refused (or, for the id, stored
// zero times), and every message stays as it was.
func TestHeadersCannotRewriteTheStreams(t *testing.T) {
	srv, keys, ajs, _ := attackedBus(t)
	ctx := context.Background()
	_, pjs := natstest.Connect(t, srv, keys[natsauth.Producer])
	prod, err := producer.New(pjs)
	if err != nil {
		t.Fatal(err)
	}
	rcpt, err := prod.Emit(ctx, producer.AuthLogin("org_victim", producer.User("u_1", "Ada", "ada@example.com"), "password"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ajs.Publish(ctx, topology.DeadLetterSubject(topology.IngestorConsumer), []byte("dead")); err != nil {
		t.Fatal(err)
	}
	waitForFanout(ctx, t, ajs, 1)
	forged := forgedCheckpoint(t)
	headers := map[string]nats.Header{
		"roll up every message":        {"Nats-Rollup": []string{"all"}},
		"roll up the subject":          {"Nats-Rollup": []string{"sub"}},
		"expire in a second":           {"Nats-TTL": []string{"1s"}},
		"schedule a copy elsewhere":    {"Nats-Schedule": []string{"@every 1s"}, "Nats-Schedule-Target": []string{"audit.events.org_victim.auth.logout"}},
		"count":                        {"Nats-Incr": []string{"1"}},
		"open an atomic batch":         {"Nats-Batch-Id": []string{"b1"}, "Nats-Batch-Sequence": []string{"1"}},
		"shadow the stored event's id": {"Nats-Msg-Id": []string{producer.MsgID("org_victim", rcpt.EventID)}},
	}
	for _, c := range []struct {
		role    natsauth.Role
		stream  string
		subject string
		body    []byte
	}{
		{natsauth.Producer, topology.EventsStream, "audit.events.org_victim.auth.login", cfgJSON(t, producer.AuthLogin("org_victim", producer.User("u_2", "Eve", "eve@example.com"), "password"))},
		{natsauth.API, topology.EventsStream, "audit.events.org_victim.auth.login", []byte(`{}`)},
		{natsauth.Tlog, topology.FanoutStream, witness.Subject("org_victim", forged.KeyID), cfgJSON(t, forged)},
		{natsauth.Ingestor, topology.DeadLetterStream, topology.DeadLetterSubject(topology.IngestorConsumer), []byte("dead")},
	} {
		st, err := ajs.Stream(ctx, c.stream)
		if err != nil {
			t.Fatal(err)
		}
		before, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first, err := st.GetMsg(ctx, before.State.FirstSeq)
		if err != nil {
			t.Fatalf("%s: message %d: %v", c.stream, before.State.FirstSeq, err)
		}
		_, js := natstest.Connect(t, srv, keys[c.role])
		for name, h := range headers {
			shadow := h.Get("Nats-Msg-Id") != ""
			if shadow && c.stream != topology.EventsStream {
				continue // only events are deduplicated by their id
			}
			ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: c.subject, Header: h, Data: c.body})
			if shadow {
				if err != nil || !ack.Duplicate {
					t.Errorf("%s: %s on %s: %+v %v, want a duplicate", c.role, name, c.stream, ack, err)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s: %s on %s accepted (seq %d)", c.role, name, c.stream, ack.Sequence)
			}
		}
		after, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.State.Msgs != before.State.Msgs || after.State.FirstSeq != before.State.FirstSeq || after.State.LastSeq != before.State.LastSeq {
			t.Errorf("%s: %s changed: %+v -> %+v", c.role, c.stream, before.State, after.State)
		}
		still, err := st.GetMsg(ctx, before.State.FirstSeq)
		if err != nil || string(still.Data) != string(first.Data) {
			t.Errorf("%s: the first message of %s changed: %v", c.role, c.stream, err)
		}
	}
}

// Every role can make the server store its answer on a subject of the
// role's choosing: JetStream answers a publish or an API request on the
// request's reply subject, and the server checks no permission on a reply
// subject. Named after an org's settings key, the answer lands in the
// settings bucket. It must change nothing: a store that holds the org's
// settings keeps them (an org moved to the default plan would have its
// new events stamped with the default plan's retention and lose its
// webhooks and SIEM streams).
func TestServerRepliesCannotReplaceSettings(t *testing.T) {
	srv, keys, ajs, _ := attackedBus(t)
	ctx := context.Background()
	_, apijs := natstest.Connect(t, srv, keys[natsauth.API])
	st, err := orgsettings.Bind(ctx, apijs, orgsettings.Free, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(ctx, orgsettings.Settings{OrgID: "org_victim", Plan: orgsettings.Enterprise}); err != nil {
		t.Fatal(err)
	}
	kv, err := ajs.KeyValue(ctx, natsauth.SettingsBucket)
	if err != nil {
		t.Fatal(err)
	}
	key := "$KV." + natsauth.SettingsBucket + ".org_victim"
	for _, r := range natsauth.Roles[1:] {
		nc, _ := natstest.Connect(t, srv, keys[r])
		// The producer publishes an event; every other role asks for the
		// events stream's configuration, which it may verify.
		m := &nats.Msg{Subject: "$JS.API.STREAM.INFO." + natsauth.EventsStream, Reply: key}
		if r == natsauth.Producer {
			m = &nats.Msg{Subject: "audit.events.org_victim.auth.login", Reply: key, Data: []byte(`{}`)}
		}
		e, err := kv.Get(ctx, "org_victim")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		// The answer is stored (this is what the decoder must refuse).
		waitFor(t, string(r)+"'s answer on the key", func() bool {
			got, err := kv.Get(ctx, "org_victim")
			return err == nil && got.Revision() > e.Revision()
		})
		if got := st.Get("org_victim"); got.Plan != orgsettings.Enterprise {
			t.Errorf("after %s's answer: org_victim's settings are %+v", r, got)
		}
	}
	// The api can still change them over the answers.
	if err := st.Put(ctx, orgsettings.Settings{OrgID: "org_victim", Plan: orgsettings.Pro}); err != nil {
		t.Fatal(err)
	}
	if got := st.Get("org_victim"); got.Plan != orgsettings.Pro {
		t.Errorf("after a change: %+v", got)
	}
}

// A role that reads a bucket may delete the consumers on its stream (a
// watch creates and deletes its own), another role's watch included. That
// only delays the other's view: its watch is recreated from the last
// revision it saw, so no change is missed.
func TestDeletedWatchMissesNoChange(t *testing.T) {
	srv, keys, ajs, _ := attackedBus(t)
	ctx := context.Background()
	_, ijs := natstest.Connect(t, srv, keys[natsauth.Ingestor])
	ingestor, err := orgsettings.Bind(ctx, ijs, orgsettings.Free, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ingestor.Close()
	_, apijs := natstest.Connect(t, srv, keys[natsauth.API])
	api, err := orgsettings.Bind(ctx, apijs, orgsettings.Free, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	stream := "KV_" + natsauth.SettingsBucket
	s, err := ajs.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	_, fjs := natstest.Connect(t, srv, keys[natsauth.Forwarder])
	deleted := 0
	for name := range s.ConsumerNames(ctx).Name() {
		if err := fjs.DeleteConsumer(ctx, stream, name); err != nil {
			t.Fatalf("siem-forwarder deleting watch %s: %v", name, err)
		}
		deleted++
	}
	if deleted != 2 {
		t.Fatalf("deleted %d watches, want the ingestor's and the api's", deleted)
	}
	if err := api.Put(ctx, orgsettings.Settings{OrgID: "org_victim", Plan: orgsettings.Enterprise}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ingestor to see the change", func() bool { return ingestor.Get("org_victim").Plan == orgsettings.Enterprise })
}

// waitForFanout waits until AUDIT_FANOUT holds n messages.
func waitForFanout(ctx context.Context, t *testing.T, js jetstream.JetStream, n uint64) {
	t.Helper()
	waitFor(t, "the fan-out copy", func() bool {
		s, err := js.Stream(ctx, topology.FanoutStream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == n
	})
}
