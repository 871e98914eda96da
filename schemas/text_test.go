package schemas

import (
	"strings"
	"testing"
	"time"
)

func TestCleanText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"curl/8.0", "curl/8.0"},
		{"a\tb\r\nc\x00d\x7fe", `a\tb\r\nc\x00d\x7Fe`},
		{"evil\u202Etxt.exe", `evil\u202Etxt.exe`},
		{"zero\u200Bwidth\uFEFF\u2066", `zero\u200Bwidth\uFEFF\u2066`},
		{"c1\u0085", `c1\x85`},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"日本語", "日本語"},
	} {
		got := CleanText(c.in, 512)
		if got != c.want {
			t.Errorf("CleanText(%q) = %q, want %q", c.in, got, c.want)
		}
		if err := CheckText(got, 512); err != nil {
			t.Errorf("CleanText(%q) = %q still fails: %v", c.in, got, err)
		}
	}
	long := strings.Repeat("é", 100<<10)
	got := CleanText(long, MaxNameLen)
	if len(got) > MaxNameLen || !strings.HasSuffix(got, "…") || CheckText(got, MaxNameLen) != nil {
		t.Fatalf("a 200 KB name cleans to %d bytes %q…", len(got), got[:20])
	}
	if CheckText("a\tb", 10) == nil || CheckText("a\u202Eb", 10) == nil || CheckText("abc", 2) == nil || CheckText("ok", 2) != nil {
		t.Fatal("CheckText")
	}
}

func TestCleanEventValidates(t *testing.T) {
	hostile := "x\t\r\n\x00\u202E" + strings.Repeat("A", 100<<10)
	ev := Event{ID: NewID(), OrgID: "org_1", Action: ActionAuditWebhookCreated, Category: CategoryAudit, OccurredAt: time.Now().UTC(),
		Actor:   Actor{Type: ActorUser, ID: "u1", Name: hostile, UserAgent: hostile},
		Targets: []Target{{Type: "webhook", ID: "ep_1", Name: hostile}},
		Outcome: OutcomeFailure, Reason: hostile,
		Details: map[string]any{"url": hostile, "actions": []string{hostile}, "filter": map[string]any{"q": []any{hostile}}}}
	if err := NewCatalog().Validate(&ev); err == nil {
		t.Fatal("the hostile event validates as is")
	}
	clean := CleanEvent(ev)
	if err := NewCatalog().Validate(&clean); err != nil {
		t.Fatalf("cleaned event: %v", err)
	}
	if !strings.HasPrefix(clean.Actor.UserAgent, `x\t\r\n\x00\u202EAAA`) {
		t.Fatalf("user agent %q", clean.Actor.UserAgent[:40])
	}
	if ev.Actor.UserAgent != hostile || ev.Details["url"] != hostile {
		t.Fatal("CleanEvent changed its argument")
	}
}
