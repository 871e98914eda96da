package query_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
)

// TestPaginationWhileInserting walks 10,000 events in pages of 50 while
// new events keep arriving, both newest ones and late ones with an old
// occurred_at, and checks that the walk sees every event that existed at
// its first request exactly once, and no event received after it.
func TestPaginationWhileInserting(t *testing.T) {
	e := newEnv(t, query.Config{SnapshotSkew: time.Millisecond})
	const n = 10000
	now := time.Now().UTC().Truncate(time.Millisecond)
	rng := rand.New(rand.NewPCG(1, 2))
	pre := make([]schemas.Event, n)
	for i := range pre {
		// Spread over 60 days, many sharing a millisecond (ties broken by id).
		at := now.Add(-time.Duration(rng.IntN(60*24*3600/10)) * 10 * time.Second)
		pre[i] = mkEvent("org_p", fmt.Sprintf("pre_%05d", i), at, "member.invited", "usr_1")
	}
	e.insert(pre...)
	// Another org's events must not show up either.
	e.insert(mkEvent("org_q", "other_0", now, "member.invited", "usr_1"))

	tok := reader(t, "org_p")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var late []string
	wg.Add(1)
	started := make(chan struct{})
	go func() {
		defer wg.Done()
		<-started
		for i := 0; ctx.Err() == nil; i++ {
			at := time.Now().UTC()
			fresh := mkEvent("org_p", fmt.Sprintf("new_%05d", i), at, "member.removed", "usr_2")
			old := mkEvent("org_p", fmt.Sprintf("late_%05d", i), at.Add(-time.Duration(1+i%50)*24*time.Hour), "member.removed", "usr_2")
			old.ReceivedAt = &at // received now, occurred long ago
			if err := e.tryInsert(fresh, old); err != nil {
				t.Error(err)
				return
			}
			late = append(late, fresh.ID, old.ID)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	seen := map[string]int{}
	params := url.Values{"limit": {"50"}}
	pages := 0
	for {
		p := e.list(tok, params)
		if pages == 0 {
			close(started)
		}
		pages++
		for _, ev := range p.Data {
			seen[ev.ID]++
		}
		if p.NextCursor == nil {
			break
		}
		params.Set("cursor", *p.NextCursor)
		if pages > n {
			t.Fatal("the walk does not end")
		}
	}
	cancel()
	wg.Wait()
	if len(late) == 0 {
		t.Fatal("no events arrived during the walk")
	}
	for _, ev := range pre {
		if seen[ev.ID] != 1 {
			t.Fatalf("pre-existing %s seen %d times", ev.ID, seen[ev.ID])
		}
	}
	extra := 0
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s seen %d times", id, c)
		}
		if len(id) < 4 || id[:4] != "pre_" {
			extra++
		}
	}
	if extra > 0 {
		t.Fatalf("%d events received after the first page were returned", extra)
	}
	t.Logf("%d pages, %d events seen once each; %d events arrived during the walk and were left out", pages, len(seen), len(late))
}
