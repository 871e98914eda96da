package eventstore

import (
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/schemas"
)

func TestDedupTokenIgnoresOrder(t *testing.T) {
	a := DedupToken([]string{"b", "a", "c"})
	if b := DedupToken([]string{"c", "b", "a"}); a != b {
		t.Fatalf("order changed the token: %s vs %s", a, b)
	}
	if c := DedupToken([]string{"a", "bc"}); c == DedupToken([]string{"ab", "c"}) {
		t.Fatal("ids are not separated in the token")
	}
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Fatalf("token %q is not lower-case hex SHA-256", a)
	}
}

func TestRecordTruncatesAndFlattens(t *testing.T) {
	occurred := time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	received := occurred.Add(time.Second)
	r := Row{
		Event: schemas.Event{
			ID: "e1", OrgID: "o", Action: "member.invited", OccurredAt: occurred, ReceivedAt: &received,
			Targets: []schemas.Target{{Type: "t", ID: "1", Name: "n"}, {Type: "u", ID: "2"}},
			Details: map[string]any{"html": "<b>&</b>"},
		},
		Raw: []byte("{}"), RetentionDays: 7,
	}
	rec, err := record(0, r)
	if err != nil {
		t.Fatal(err)
	}
	if rec.OccurredAt.Nanosecond() != 123000000 || rec.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred_at %v not UTC milliseconds", rec.OccurredAt)
	}
	if strings.Join(rec.TargetIDs, ",") != "1,2" || strings.Join(rec.TargetNames, ",") != "n," {
		t.Errorf("targets %v %v", rec.TargetIDs, rec.TargetNames)
	}
	if rec.Details != `{"html":"<b>&</b>"}` {
		t.Errorf("details %s", rec.Details)
	}
}

func TestNewRejectsBadNames(t *testing.T) {
	for _, cfg := range []Config{{Database: "a-b"}, {Database: "x`; DROP"}, {Cluster: "c'"}} {
		if _, err := New(nopEngine{}, cfg); err == nil {
			t.Errorf("New(%+v) gave no error", cfg)
		}
	}
}

func TestStructure(t *testing.T) {
	s := Structure()
	if strings.Contains(s, "LowCardinality") || !strings.HasPrefix(s, "id String, org_id String,") {
		t.Fatalf("structure %s", s)
	}
	if len(strings.Split(ColumnList(), ", ")) != len(Columns) {
		t.Fatal("column list length")
	}
}
