package destinations_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/siem-forwarder/destinations"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStoresShareOneCollection: a store that binds to the buckets another
// created sees its destinations and changes; writes from a stale read
// fail instead of undoing a change; pause and update made concurrently
// both stay.
func TestStoresShareOneCollection(t *testing.T) {
	srv, _, js := natstest.StartWithTopology(t, topology.Config{MaxBytes: 1 << 28})
	ctx := context.Background()
	box, err := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{7}, secretbox.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	nc2, err := srv.Connect("second", natstest.AdminOptions(t, srv)...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	if _, err := destinations.Open(ctx, js2, box, destinations.Config{Bind: true}); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("bind before the buckets exist: %v", err)
	}
	a, err := destinations.Open(ctx, js, box, destinations.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := destinations.Open(ctx, js2, box, destinations.Config{Bind: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	d, err := a.Create(ctx, destinations.Destination{Fields: destination.Fields{OrgID: "org_1", Filters: []string{"member.*", "auth.*", "member.*"}},
		Name: "soc", Format: "hec", Transport: "https", Address: "https://splunk.example.com"}, destinations.Secrets{Token: destination.NewSecret("hec-token-1")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Filters, ",") != "auth.*,member.*" {
		t.Errorf("filters not normalized: %v", d.Filters)
	}
	waitFor(t, "b to see the destination", func() bool { _, err := b.Get(ctx, "org_1", d.ID); return err == nil })
	got, _ := b.Get(ctx, "org_1", d.ID)
	sec, err := b.Secrets(got)
	if err != nil || sec.Token.Reveal() != "hec-token-1" {
		t.Fatalf("secrets: %v", err)
	}
	if s := fmt.Sprintf("%v %+v", sec, got); strings.Contains(s, "hec-token-1") {
		t.Fatalf("credential printed: %s", s)
	}

	// b renames from its read; a's later update from the same (now stale)
	// revision is refused.
	renamed := got
	renamed.Name = "soc-b"
	if _, err := b.Update(ctx, renamed, nil); err != nil {
		t.Fatal(err)
	}
	stale := got
	stale.Name = "soc-a"
	if _, err := a.Update(ctx, stale, nil); !errors.Is(err, destinations.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	// Pausing on a (whose cache may lag) keeps b's rename.
	p, err := a.SetPaused(ctx, "org_1", d.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Paused || p.Name != "soc-b" {
		t.Fatalf("after pause: %+v", p)
	}
	waitFor(t, "b to see the pause", func() bool { x, _ := b.Get(ctx, "org_1", d.ID); return x.Paused && x.Name == "soc-b" })

	if _, err := b.Delete(ctx, "org_1", d.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see the delete", func() bool { _, err := a.Get(ctx, "org_1", d.ID); return errors.Is(err, destinations.ErrNotFound) })
	if ds, _ := a.List(ctx, "org_1"); len(ds) != 0 {
		t.Fatalf("list after delete: %+v", ds)
	}
}

// TestLegacyActionsField: a destination stored when the filters were
// called "actions" keeps them.
func TestLegacyActionsField(t *testing.T) {
	_, _, js := natstest.StartWithTopology(t, topology.Config{MaxBytes: 1 << 28})
	ctx := context.Background()
	box, _ := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{7}, secretbox.KeySize)})
	s, err := destinations.Open(ctx, js, box, destinations.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kv, _ := js.KeyValue(ctx, destinations.Bucket)
	if _, err := kv.Put(ctx, "org_1.old1", []byte(`{"id":"old1","org_id":"org_1","name":"x","format":"syslog","transport":"tcp","address":"h:1","actions":["auth.*"]}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the legacy record", func() bool { _, err := s.Get(ctx, "org_1", "old1"); return err == nil })
	d, _ := s.Get(ctx, "org_1", "old1")
	if !d.Matches("auth.login_failed") || d.Matches("member.added") {
		t.Fatalf("legacy filters: %v", d.Filters)
	}
}

func TestValidateUsesTheSharedRules(t *testing.T) {
	d := destinations.Destination{Fields: destination.Fields{OrgID: "org.1", Filters: []string{"auth.login_?", "Member.*"}},
		Name: "x", Format: "syslog", Transport: "tcp", Address: "h:1"}
	err := d.Validate(destinations.Secrets{})
	var inv *destinations.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("Validate: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"org_id", `action filter "auth.login_?"`, `action filter "Member.*"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
}

// A value no API call wrote on a destination's key (a JetStream reply a
// client had the server store there names no destination) changes
// nothing: the destination stays as it was, and the next change replaces
// the value.
func TestAForeignValueLeavesTheDestination(t *testing.T) {
	_, _, js := natstest.StartWithTopology(t, topology.Config{MaxBytes: 1 << 28})
	ctx := context.Background()
	box, err := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{7}, secretbox.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := destinations.Open(ctx, js, box, destinations.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := s.Create(ctx, destinations.Destination{Fields: destination.Fields{OrgID: "org_1"},
		Name: "soc", Format: "hec", Transport: "https", Address: "https://splunk.example.com"}, destinations.Secrets{Token: destination.NewSecret("t")})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, destinations.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, destinations.Key("org_1", d.ID), []byte(`{"stream":"AUDIT_EVENTS","seq":7}`))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the foreign revision", func() bool { x, err := s.Get(ctx, "org_1", d.ID); return err == nil && x.Revision == rev })
	if x, _ := s.Get(ctx, "org_1", d.ID); x.Name != "soc" || x.Address != d.Address {
		t.Fatalf("after a foreign value: %+v", x)
	}
	if _, err := s.SetPaused(ctx, "org_1", d.ID, true); err != nil {
		t.Fatalf("a change over the foreign value: %v", err)
	}
}
