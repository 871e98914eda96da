package kvcollection_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/kvcollection"
	"github.com/takumo/audit/platform/natstest"
)

type rec struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func config() kvcollection.Config[rec] {
	return kvcollection.Config[rec]{Bucket: jetstream.KeyValueConfig{Bucket: "TEST_COLLECTION", History: 1, Storage: jetstream.MemoryStorage}}
}

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

func TestTwoInstancesSeeEachOther(t *testing.T) {
	srv, _, js := natstest.Start(t)
	ctx := context.Background()
	a, err := kvcollection.Create(ctx, js, config())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Create(ctx, "org_1.x", rec{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	// A second process binds to the bucket the first created, on its own
	// connection, and starts with what is stored.
	nc2, err := srv.Connect("second", natstest.AdminOptions(t, srv)...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	b, err := kvcollection.Bind(ctx, js2, config())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	select {
	case <-b.Ready():
	default:
		t.Fatal("Bind returned before the collection was ready")
	}
	if e, ok := b.Get("org_1.x"); !ok || e.Value.Name != "x" {
		t.Fatalf("second instance: %+v %v", e, ok)
	}
	changes := a.Changes()
	// b's writes reach a, and a is told.
	if _, err := b.Create(ctx, "org_1.y", rec{Name: "y"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b's create", func() bool { _, ok := a.Get("org_1.y"); return ok })
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no change notification")
	}
	if _, err := b.Update(ctx, "org_1.x", func(r *rec) error { r.Count = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b's update", func() bool { e, _ := a.Get("org_1.x"); return e.Value.Count == 7 })
	if err := a.Delete(ctx, "org_1.y"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to see a's delete", func() bool { _, ok := b.Get("org_1.y"); return !ok })
	if got := b.List("org_1."); len(got) != 1 || got[0].Key != "org_1.x" {
		t.Fatalf("List: %+v", got)
	}
	if got := b.List("org_2."); len(got) != 0 {
		t.Fatalf("List of another prefix: %+v", got)
	}
}

func TestWriteRules(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	if _, err := kvcollection.Bind(ctx, js, config()); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("Bind to a missing bucket: %v", err)
	}
	c, err := kvcollection.Create(ctx, js, config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e, err := c.Create(ctx, "k", rec{Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	// A write is in the writer's cache when the call returns.
	if got, ok := c.Get("k"); !ok || got.Revision != e.Revision {
		t.Fatalf("cache after create: %+v", got)
	}
	if _, err := c.Create(ctx, "k", rec{Name: "second"}); !errors.Is(err, kvcollection.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	e2, err := c.CompareAndSet(ctx, "k", rec{Name: "cas"}, e.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompareAndSet(ctx, "k", rec{Name: "stale"}, e.Revision); !errors.Is(err, kvcollection.ErrConflict) {
		t.Fatalf("stale CompareAndSet: %v", err)
	}
	if err := c.DeleteAt(ctx, "k", e.Revision); !errors.Is(err, kvcollection.ErrConflict) {
		t.Fatalf("stale DeleteAt: %v", err)
	}
	abort := errors.New("no")
	if _, err := c.Update(ctx, "k", func(*rec) error { return abort }); !errors.Is(err, abort) {
		t.Fatalf("aborted update: %v", err)
	}
	if _, err := c.Update(ctx, "missing", func(*rec) error { return nil }); !errors.Is(err, kvcollection.ErrNotFound) {
		t.Fatalf("update of a missing key: %v", err)
	}
	if err := c.DeleteAt(ctx, "k", e2.Revision); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("k"); ok {
		t.Fatal("deleted record still cached")
	}
	if err := c.Delete(ctx, "k"); !errors.Is(err, kvcollection.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := c.CompareAndSet(ctx, "k", rec{}, e2.Revision); !errors.Is(err, kvcollection.ErrNotFound) {
		t.Fatalf("CompareAndSet of a deleted key: %v", err)
	}
	// A key can be created again after a delete.
	if _, err := c.Create(ctx, "k", rec{Name: "again"}); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}

func TestConcurrentUpdatesKeepEveryChange(t *testing.T) {
	srv, _, js := natstest.Start(t)
	ctx := context.Background()
	a, err := kvcollection.Create(ctx, js, config())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Create(ctx, "counter", rec{}); err != nil {
		t.Fatal(err)
	}
	nc2, _ := srv.Connect("second", natstest.AdminOptions(t, srv)...)
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	b, err := kvcollection.Bind(ctx, js2, config())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Two instances, several writers each, every one adding one.
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i := range 2 * writers {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := c.Update(ctx, "counter", func(r *rec) error { r.Count++; return nil }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := 2 * writers * each
	for name, c := range map[string]*kvcollection.Collection[rec]{"a": a, "b": b} {
		waitFor(t, fmt.Sprintf("%s to see %d", name, want), func() bool { e, _ := c.Get("counter"); return e.Value.Count == want })
	}
}

func TestInvalidRecordsAreLeftOut(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	kv, err := js.CreateOrUpdateKeyValue(ctx, config().Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "bad", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "good", []byte(`{"name":"g"}`)); err != nil {
		t.Fatal(err)
	}
	c, err := kvcollection.Start(kv, config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("bad"); ok || c.Len() != 1 {
		t.Fatalf("cache holds %d records", c.Len())
	}
	// A later revision that does not decode leaves the last valid value
	// in place, at that revision, so a compare-and-set writer can
	// replace it.
	rev, err := kv.Put(ctx, "good", []byte(`{"name":{"stream":"X","seq":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "bad", []byte("{still not json")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invalid revision", func() bool { e, _ := c.Get("good"); return e.Revision == rev })
	if e, ok := c.Get("good"); !ok || e.Value.Name != "g" {
		t.Fatalf("good = %+v %v, want the last valid value", e, ok)
	}
	if _, ok := c.Get("bad"); ok || c.Len() != 1 {
		t.Fatalf("cache holds %d records", c.Len())
	}
	if _, err := c.CompareAndSet(ctx, "good", rec{Name: "g2"}, rev); err != nil {
		t.Fatalf("compare-and-set over the invalid revision: %v", err)
	}
}

// A Delete racing other writers' Updates of the record removes it: the
// write that got in between its read and its delete makes it retry, not
// fail with ErrConflict.
func TestDeleteWinsOverConcurrentUpdates(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	c, err := kvcollection.Create(ctx, js, config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for k := range 20 {
		key := fmt.Sprintf("busy%d", k)
		if _, err := c.Create(ctx, key, rec{}); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				_, err := c.Update(ctx, key, func(r *rec) error { r.Count++; return nil })
				if errors.Is(err, kvcollection.ErrNotFound) {
					done <- nil
					return
				}
				if err != nil {
					done <- err
					return
				}
			}
		}()
		waitFor(t, "the updates to run", func() bool { e, _ := c.Get(key); return e.Value.Count > 2 })
		err := c.Delete(ctx, key)
		close(stop)
		if uerr := <-done; uerr != nil {
			t.Fatalf("%s: update: %v", key, uerr)
		}
		if err != nil {
			t.Fatalf("%s: delete while another writer updates it: %v", key, err)
		}
		if _, err := c.Update(ctx, key, func(*rec) error { return nil }); !errors.Is(err, kvcollection.ErrNotFound) {
			t.Fatalf("%s: after the delete, update: %v, want ErrNotFound", key, err)
		}
	}
}
