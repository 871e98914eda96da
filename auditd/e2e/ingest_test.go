package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/ingestapi"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

var ingestSecret = []byte("e2e-ingest-secret-0123456789abcdef")

// ingestSide is a pipeline with the HTTP ingest API in front of it: the
// keys bucket, the API publishing as the producer identity, an ingestor
// into a fresh store.
type ingestSide struct {
	p      *pipeline
	store  *eventstore.Store
	keys   *ingestapi.Keys
	pub    *producer.Producer
	apiJS  jetstream.JetStream
	prodJS jetstream.JetStream
	url    string
}

func newIngestSide(t *testing.T) *ingestSide {
	t.Helper()
	p := newPipeline(t, 30*time.Second)
	store := newStore(t)
	p.startIngestor(t, store, ingestor.Config{BatchSize: 100, BatchWait: 20 * time.Millisecond})
	if _, err := p.js.CreateOrUpdateKeyValue(context.Background(), ingestapi.KeysBucketConfig(1)); err != nil {
		t.Fatal(err)
	}
	ids := natstest.Keys(p.srv)
	_, apiJS := natstest.Connect(t, p.srv, ids[natsauth.API])
	_, prodJS := natstest.Connect(t, p.srv, ids[natsauth.Producer])
	keys, err := ingestapi.OpenKeys(context.Background(), apiJS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	pub, err := producer.New(prodJS)
	if err != nil {
		t.Fatal(err)
	}
	s := &ingestSide{p: p, store: store, keys: keys, pub: pub, apiJS: apiJS, prodJS: prodJS}
	s.url = s.serve(t)
	return s
}

// serve starts one more API process over the same bus and store (a fresh
// process: it remembers nothing of the others' writes).
func (s *ingestSide) serve(t *testing.T) string {
	t.Helper()
	auth, err := httpapi.NewAuth(httpapi.AuthConfig{HMACSecret: ingestSecret}, httpapi.RateLimit{PerSecond: 100, Burst: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := producer.New(s.apiJS)
	if err != nil {
		t.Fatal(err)
	}
	api, err := ingestapi.New(ingestapi.Config{}, ingestapi.Deps{Auth: auth, Keys: s.keys, Publisher: s.pub, Catalog: schemas.NewCatalog(), Stored: s.store,
		Recorder: httpapi.Recorder{Emit: func(ctx context.Context, ev schemas.Event) error { _, err := rec.Emit(ctx, ev); return err }}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

func (s *ingestSide) key(t *testing.T, org string) auditapi.CreatedServiceKey {
	t.Helper()
	tok, err := auditapi.Mint(ingestSecret, auditapi.TokenSpec{OrgID: org, Subject: "admin", Permissions: []string{auditapi.PermManage}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, body := post(t, s.url+"/v1/service-keys", tok, []byte(`{"service": "billing"}`))
	if code != http.StatusCreated {
		t.Fatalf("create key: %d %s", code, body)
	}
	var k auditapi.CreatedServiceKey
	if err := json.Unmarshal(body, &k); err != nil {
		t.Fatal(err)
	}
	return k
}

func post(t *testing.T, url, bearer string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (s *ingestSide) raw(t *testing.T, org, id string) []byte {
	t.Helper()
	var raw []byte
	waitFor(t, "event "+id+" stored", 30*time.Second, func() bool {
		var err error
		raw, err = s.store.GetRaw(context.Background(), org, id)
		return err == nil
	})
	return raw
}

// oldID is a UUIDv7 minted at t: an id older than the stream's duplicate
// window.
func oldID(t time.Time) string {
	var r [10]byte
	_, _ = rand.Read(r[:])
	ms := uint64(t.UnixMilli())
	return fmt.Sprintf("%08x-%04x-7%03x-%04x-%012x", ms>>16, ms&0xffff, binary.BigEndian.Uint16(r[0:2])&0xfff,
		0x8000|binary.BigEndian.Uint16(r[2:4])&0x3fff, binary.BigEndian.Uint64(r[2:10])&0xffffffffffff)
}

// The same event written over HTTP and through the producer library is
// stored with the same bytes: the server fills what the producer fills,
// and the producer given the key's source (producer.WithSource) carries
// its writer the same way.
func TestHTTPAndProducerStoreTheSameBytes(t *testing.T) {
	httpSide, goSide := newIngestSide(t), newIngestSide(t)
	k := httpSide.key(t, "org_acme")
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	for _, ev := range []schemas.Event{
		producer.BillingInvoicePaid("org_acme", producer.Service("billing"), producer.Invoice("inv_1042"), 4900, "EUR"),
		producer.MemberRoleChanged("org_acme", producer.User("usr_42", "Ada Lovelace", "ada@acme.example"),
			producer.Member("usr_77", "Bob Example", "bob@acme.example"), "member", "admin"),
	} {
		ev.ID, ev.OccurredAt = schemas.NewID(), at
		// What a client in another language sends: the envelope, without
		// category or outcome (the server fills them, as the producer does).
		doc, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(doc, &m)
		delete(m, "category")
		delete(m, "outcome")
		delete(m, "received_at")
		body, _ := json.Marshal(map[string]any{"events": []any{m}})
		if code, b := post(t, httpSide.url+"/v1/events", k.Key, body); code != 200 {
			t.Fatalf("%s over HTTP: %d %s", ev.Action, code, b)
		}
		p, err := producer.New(goSide.prodJS, producer.WithSource(ingestapi.KeySource(k.ServiceKey)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Emit(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		viaHTTP, viaGo := httpSide.raw(t, "org_acme", ev.ID), goSide.raw(t, "org_acme", ev.ID)
		if !bytes.Equal(viaHTTP, viaGo) {
			t.Fatalf("%s stored differently:\nHTTP:     %s\nproducer: %s", ev.Action, viaHTTP, viaGo)
		}
	}
}

// A replay with changed content under a stored id is never stored over
// the original, and its answer never claims it was stored: within the
// stream's duplicate window and after it (an old id, answered by a process
// that did not write the first copy, looked up in the store).
func TestChangedReplayIsAConflict(t *testing.T) {
	s := newIngestSide(t)
	k := s.key(t, "org_acme")
	for name, id := range map[string]string{"recent id": schemas.NewID(), "id older than the window": oldID(time.Now().Add(-2 * time.Hour))} {
		t.Run(name, func(t *testing.T) {
			original := fmt.Sprintf(`{"events": [{"id": %q, "org_id": "org_acme", "action": "billing.plan_changed", "actor": {"type": "service", "id": "billing"},
				"details": {"from_plan": "pro", "to_plan": "enterprise"}}]}`, id)
			code, first := post(t, s.url+"/v1/events", k.Key, []byte(original))
			if code != 200 {
				t.Fatalf("original: %d %s", code, first)
			}
			stored := s.raw(t, "org_acme", id)
			changed := bytes.Replace([]byte(original), []byte(`"enterprise"`), []byte(`"free"`), 1)
			other := s.serve(t) // a process that did not write the original
			for _, url := range []string{s.url, other} {
				code, b := post(t, url+"/v1/events", k.Key, changed)
				var p struct {
					Results []auditapi.IngestResult `json:"results"`
				}
				if code != http.StatusConflict || json.Unmarshal(b, &p) != nil || p.Results[0].Status != auditapi.IngestConflict {
					t.Fatalf("changed replay: %d %s", code, b)
				}
				// The same request again: the process that answered it
				// repeats its answer; another finds the duplicate.
				code, b = post(t, url+"/v1/events", k.Key, []byte(original))
				if code != 200 || (url == s.url && !bytes.Equal(b, first)) || (url == other && !bytes.Contains(b, []byte(`"status":"duplicate"`))) {
					t.Fatalf("same replay: %d %s", code, b)
				}
			}
			time.Sleep(200 * time.Millisecond) // past an ingest batch
			if got := s.raw(t, "org_acme", id); !bytes.Equal(got, stored) {
				t.Fatalf("the original changed:\n%s\n%s", stored, got)
			}
		})
	}
	// The two originals and the key's creation record.
	if n := count(t, s.store, "org_acme"); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
}
