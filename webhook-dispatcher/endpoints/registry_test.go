package endpoints_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
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

// TestRotationLimitsEveryOlderSecret: a rotation bounds how long every
// older secret signs, not only the one it replaces. Rotating with a 1 h
// overlap and then with a 10 min one leaves both older secrets 10 min; an
// emergency rotation (overlap 0) stops every older secret at once.
func TestRotationLimitsEveryOlderSecret(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	box, err := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{5}, secretbox.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	reg, err := endpoints.Open(ctx, js, box, endpoints.Config{CheckURL: netguard.New(netguard.Webhooks(false, nil)).CheckURL, Now: clock}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ep, s1, err := reg.Create(ctx, "org_1", endpoints.Spec{URL: "https://hooks.example.com/a"})
	if err != nil {
		t.Fatal(err)
	}
	signers := func(at time.Time) []string {
		var out []string
		for _, k := range reg.SigningKeys("org_1", ep.ID, at) {
			out = append(out, k.Reveal())
		}
		return out
	}
	rotate := func(overlap time.Duration) string {
		t.Helper()
		got, s, err := reg.Rotate(ctx, "org_1", ep.ID, overlap)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the rotation in the cache", func() bool {
			k := reg.SigningKeys("org_1", ep.ID, clock())
			return len(k) > 0 && k[0].Reveal() == s.Reveal() && len(got.Secrets) > 0
		})
		return s.Reveal()
	}
	same := func(got []string, want ...string) bool { return strings.Join(got, " ") == strings.Join(want, " ") }

	s2 := rotate(time.Hour)
	advance(time.Minute)
	s3 := rotate(10 * time.Minute)
	if got := signers(clock()); !same(got, s3, s2, s1.Reveal()) {
		t.Fatalf("after two rotations %d secrets sign, want the three", len(got))
	}
	// The 10 min overlap also bounds s1, which had 59 min left.
	if got := signers(clock().Add(11 * time.Minute)); !same(got, s3) {
		t.Fatalf("11 min after a 10 min rotation %d secrets sign, want only the newest", len(got))
	}

	s4 := rotate(time.Hour)
	advance(time.Minute)
	s5 := rotate(0)
	if got := signers(clock()); !same(got, s5) {
		t.Fatalf("right after an emergency rotation %d secrets sign, want only the new one", len(got))
	}
	if got, _ := reg.Get("org_1", ep.ID); len(got.Secrets) != 1 {
		t.Fatalf("the endpoint keeps %d secrets after an emergency rotation, want 1", len(got.Secrets))
	}
	for _, old := range []string{s1.Reveal(), s2, s3, s4} {
		if slices.Contains(signers(clock()), old) {
			t.Fatal("an older secret still signs after an emergency rotation")
		}
	}
}
