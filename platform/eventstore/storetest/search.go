package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/schemas"
)

// searchFixture stores a small, varied set of events of org_s (and one
// event of org_other) and returns org_s's events newest first.
func searchFixture(t *testing.T, s *eventstore.Store) ([]schemas.Event, time.Time) {
	t.Helper()
	migrate(t, s)
	now := base()
	mk := func(i int, ago time.Duration, action, actor, outcome string, targets ...schemas.Target) schemas.Event {
		e := event("org_s", i, now.Add(-ago))
		e.OccurredAt = now.Add(-ago)
		e.ID = fmt.Sprintf("01JDSEARCH%04d", i)
		r := e.OccurredAt
		e.ReceivedAt = &r
		e.Action, e.Actor.ID, e.Outcome, e.Targets = action, actor, outcome, targets
		e.Category, _, _ = strings.Cut(action, ".")
		return e
	}
	evs := []schemas.Event{
		mk(0, 1*time.Minute, "member.invited", "usr_1", "success", schemas.Target{Type: "member", ID: "usr_9", Name: "Grace Hopper"}),
		mk(1, 2*time.Minute, "member.removed", "usr_2", "success", schemas.Target{Type: "member", ID: "usr_8", Name: "Alan Turing"}),
		mk(2, 3*time.Hour, "api_key.created", "usr_1", "success", schemas.Target{Type: "api_key", ID: "key_1", Name: "CI deploy key"}),
		mk(3, 2*24*time.Hour, "auth.login_failed", "usr_3", "failure"),
		mk(4, 10*24*time.Hour, "api_key.deleted", "usr_2", "success", schemas.Target{Type: "api_key", ID: "key_1", Name: "CI deploy key"}),
		mk(5, 50*24*time.Hour, "memberXinvited", "usr_1", "success"), // '.' of a glob is not a wildcard
		mk(6, 80*24*time.Hour, "policy.updated", "usr_4", "failure", schemas.Target{Type: "policy", ID: "pol_%_1", Name: "Ünïcode Pölicy"}),
	}
	rs := make([]eventstore.Row, len(evs))
	for i, e := range evs {
		rs[i] = row(e, 365)
	}
	other := event("org_other", 0, now.Add(-time.Minute))
	other.Actor.ID = "usr_1"
	rs = append(rs, row(other, 365))
	insert(t, s, rs)
	return evs, now
}

func search(t *testing.T, s *eventstore.Store, org string, f eventstore.Filter, p eventstore.Page) []schemas.Event {
	t.Helper()
	if p.Limit == 0 {
		p.Limit = 100
	}
	es, err := s.Search(ctx(t), org, f, p)
	if err != nil {
		t.Fatalf("Search(%+v): %v", f, err)
	}
	return es
}

func testSearchFilters(t *testing.T, s *eventstore.Store) {
	evs, now := searchFixture(t, s)
	id := func(is ...int) []string {
		out := []string{}
		for _, i := range is {
			out = append(out, evs[i].ID)
		}
		return out
	}
	c := func(f eventstore.Field, not bool, vs ...string) eventstore.Cond {
		return eventstore.Cond{Field: f, Values: vs, Not: not}
	}
	cases := []struct {
		name string
		f    eventstore.Filter
		want []string
	}{
		{"all newest first", eventstore.Filter{}, id(0, 1, 2, 3, 4, 5, 6)},
		{"actor", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldActor, false, "usr_1")}}, id(0, 2, 5)},
		{"actor or", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldActor, false, "usr_3", "usr_4")}}, id(3, 6)},
		{"action exact", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldAction, false, "member.invited")}}, id(0)},
		{"action glob", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldAction, false, "member.*")}}, id(0, 1)},
		{"action glob suffix", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldAction, false, "*.created")}}, id(2)},
		{"not action glob", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldAction, true, "api_key.*", "member.*")}}, id(3, 5, 6)},
		{"category", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldCategory, false, "auth")}}, id(3)},
		{"target id", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldTarget, false, "key_1")}}, id(2, 4)},
		{"target id with LIKE metacharacters", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldTarget, false, "pol_%_1")}}, id(6)},
		{"outcome not", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldOutcome, true, "success")}}, id(3, 6)},
		{"text in target name, any case", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldText, false, "grace")}}, id(0)},
		{"text in action", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldText, false, "LOGIN")}}, id(3)},
		{"text in target id", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldText, false, "key_1")}}, id(2, 4)},
		{"text unicode case", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldText, false, "ünïcode")}}, id(6)},
		{"two words, both needed", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldText, false, "deploy"), c(eventstore.FieldText, false, "deleted")}}, id(4)},
		{"since", eventstore.Filter{Since: now.Add(-4 * time.Hour)}, id(0, 1, 2)},
		{"until", eventstore.Filter{Until: now.Add(-24 * time.Hour)}, id(3, 4, 5, 6)},
		{"since and until", eventstore.Filter{Since: now.Add(-60 * 24 * time.Hour), Until: now.Add(-2 * 24 * time.Hour)}, id(4, 5)},
		{"received by", eventstore.Filter{ReceivedBy: now.Add(-time.Hour)}, id(2, 3, 4, 5, 6)},
		{"combined", eventstore.Filter{Conds: []eventstore.Cond{c(eventstore.FieldActor, false, "usr_1"), c(eventstore.FieldAction, true, "member.*")}, Since: now.Add(-60 * 24 * time.Hour)}, id(2, 5)},
	}
	for _, tc := range cases {
		if got := ids(search(t, s, "org_s", tc.f, eventstore.Page{})); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// Every value is data: injection strings match nothing and break nothing.
	for _, v := range []string{"' OR 1=1 --", "usr_1' OR '1'='1", "\\", "'); DROP TABLE events; --", "{org:String}", "%", "_", "\x00", "\n\t\r"} {
		for _, f := range []eventstore.Field{eventstore.FieldActor, eventstore.FieldAction, eventstore.FieldCategory, eventstore.FieldTarget, eventstore.FieldOutcome, eventstore.FieldText} {
			if f == eventstore.FieldText && (v == "%" || v == "_") {
				continue // literal substrings of stored names
			}
			got := search(t, s, "org_s", eventstore.Filter{Conds: []eventstore.Cond{c(f, false, v)}}, eventstore.Page{})
			if len(got) != 0 {
				t.Errorf("%s = %q matched %v", f, v, ids(got))
			}
		}
	}
	// The other org's event never shows, whatever the filter.
	if got := ids(search(t, s, "org_other", eventstore.Filter{}, eventstore.Page{})); len(got) != 1 {
		t.Fatalf("org_other sees %v", got)
	}
	if _, err := s.Search(ctx(t), "org_s", eventstore.Filter{}, eventstore.Page{Limit: 0}); !errors.Is(err, eventstore.ErrBadFilter) {
		t.Fatalf("limit 0: %v, want ErrBadFilter", err)
	}
	if _, err := s.Search(ctx(t), "bad org", eventstore.Filter{}, eventstore.Page{Limit: 1}); !errors.Is(err, eventstore.ErrBadFilter) {
		t.Fatalf("bad org: %v, want ErrBadFilter", err)
	}
}

func testSearchKeyset(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	// 300 events over 90 days, several sharing a millisecond, so pages cross
	// every search window and ties are broken by id.
	now := base()
	var rs []eventstore.Row
	for i := range 300 {
		e := event("org_k", i, now)
		e.OccurredAt = now.Add(-time.Duration(i/3) * 7 * time.Hour)
		r := e.OccurredAt
		e.ReceivedAt = &r
		rs = append(rs, row(e, 365))
	}
	insert(t, s, rs)
	var seen []string
	var after *eventstore.Key
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		es := search(t, s, "org_k", eventstore.Filter{}, eventstore.Page{After: after, Limit: 7})
		seen = append(seen, ids(es)...)
		if len(es) < 7 {
			break
		}
		k := eventstore.KeyOf(es[len(es)-1])
		after = &k
	}
	all := ids(search(t, s, "org_k", eventstore.Filter{}, eventstore.Page{Limit: 1000}))
	if len(all) != 300 || !reflect.DeepEqual(seen, all) {
		t.Fatalf("paged walk saw %d events, one page %d; differ: %v", len(seen), len(all), !reflect.DeepEqual(seen, all))
	}
	// An actor-only filter is served through the actor key table in small
	// pages and by the general path in large ones: both walks agree.
	actor := rs[4].Event.Actor.ID
	byActor := eventstore.Filter{Conds: []eventstore.Cond{{Field: eventstore.FieldActor, Values: []string{actor}}}}
	var walked []string
	after = nil
	for pages := 0; ; pages++ {
		if pages > 300 {
			t.Fatal("actor pagination does not end")
		}
		es := search(t, s, "org_k", byActor, eventstore.Page{After: after, Limit: 4})
		walked = append(walked, ids(es)...)
		if len(es) < 4 {
			break
		}
		k := eventstore.KeyOf(es[len(es)-1])
		after = &k
	}
	general := ids(search(t, s, "org_k", byActor, eventstore.Page{Limit: 1000}))
	if len(general) == 0 || !reflect.DeepEqual(walked, general) {
		t.Fatalf("actor walk saw %d events, the general path %d; same: %v", len(walked), len(general), reflect.DeepEqual(walked, general))
	}

	var streamed []string
	err := s.Stream(ctx(t), "org_k", eventstore.Filter{}, func(e schemas.Event) error {
		streamed = append(streamed, e.ID)
		return nil
	})
	if err != nil || !reflect.DeepEqual(streamed, all) {
		t.Fatalf("Stream: %v; %d events, same order %v", err, len(streamed), reflect.DeepEqual(streamed, all))
	}
	stop := errors.New("stop")
	n := 0
	err = s.Stream(ctx(t), "org_k", eventstore.Filter{}, func(schemas.Event) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Stream did not stop at fn's error: %v after %d", err, n)
	}
}
