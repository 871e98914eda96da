package endpoints_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
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

// TestRegistriesShareOneBucket: a registry bound to the bucket another
// created sees its endpoints (secrets included), both learn of each
// other's changes, and concurrent changes from both keep every one.
func TestRegistriesShareOneBucket(t *testing.T) {
	srv, _, js := natstest.Start(t)
	ctx := context.Background()
	box, err := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{3}, secretbox.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := endpoints.Config{CheckURL: netguard.New(netguard.Webhooks(false, nil)).CheckURL, Bind: true}
	if _, err := endpoints.Open(ctx, js, box, cfg, nil); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("bind before the bucket exists: %v", err)
	}
	cfg.Bind = false
	a, err := endpoints.Open(ctx, js, box, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	nc2, _ := srv.Connect("second", natstest.AdminOptions(t, srv)...)
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	cfg.Bind = true
	b, err := endpoints.Open(ctx, js2, box, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	if _, _, err := a.Create(ctx, "org_1", endpoints.Spec{URL: "https://hooks.example.com/a", Filters: []string{"member"}}); !errors.Is(err, endpoints.ErrInvalid) || !strings.Contains(err.Error(), `"member.*"`) {
		t.Fatalf("invalid filter: %v", err)
	}
	changes := b.Changes()
	ep, secret, err := a.Create(ctx, "org_1", endpoints.Spec{URL: "https://hooks.example.com/a", Filters: []string{"member.*", "auth.login_*"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("b was not told of a's create")
	}
	waitFor(t, "b to see the endpoint", func() bool { _, ok := b.Get("org_1", ep.ID); return ok })
	keys := b.SigningKeys("org_1", ep.ID, time.Now())
	if len(keys) != 1 || keys[0].Reveal() != secret.Reveal() {
		t.Fatal("b does not sign with the endpoint's secret")
	}
	if got := b.Matching("org_1", "auth.login_failed"); len(got) != 1 {
		t.Fatalf("matching: %v", got)
	}
	if got := b.Matching("org_1", "org.deleted"); len(got) != 0 {
		t.Fatalf("matching a filtered-out action: %v", got)
	}
	if s := fmt.Sprintf("%v %+v", ep, keys); strings.Contains(s, strings.TrimPrefix(secret.Reveal(), "whsec_")) {
		t.Fatalf("secret printed: %s", s)
	}

	// a edits the description while b records delivery results, many
	// times over: no write fails, and none undoes the other's fields.
	var wg sync.WaitGroup
	const n = 10
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			d := fmt.Sprintf("d%d", i)
			if _, err := a.Modify(ctx, "org_1", ep.ID, endpoints.Change{Description: &d}); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := b.NoteResult(ctx, "org_1", ep.ID, i%2 == 0); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	final, _, err := b.Rotate(ctx, "org_1", ep.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(final.Secrets) != 2 || !strings.HasPrefix(final.Description, "d") || strings.Join(final.Filters, ",") != "auth.login_*,member.*" {
		t.Fatalf("after concurrent changes: %+v", final)
	}
	waitFor(t, "a to see the rotation", func() bool { return len(a.SigningKeys("org_1", ep.ID, time.Now())) == 2 })
	if err := b.Delete(ctx, "org_1", ep.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see the delete", func() bool { _, ok := a.Get("org_1", ep.ID); return !ok })
	if err := a.Delete(ctx, "org_1", ep.ID); !errors.Is(err, endpoints.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}
