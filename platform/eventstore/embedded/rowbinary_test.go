package embedded

import (
	"math"
	"testing"
	"time"

	"github.com/takumo/audit/platform/eventstore"
)

func TestParamText(t *testing.T) {
	at := time.Date(2026, 11, 26, 15, 4, 5, 123000000, time.FixedZone("X", 3600))
	cases := []struct {
		in   any
		want string
	}{
		{"plain", "plain"},
		{"a\\b\tc\nd\re\x00f'g\"", `a\\b\tc\nd\re\0f'g"`},
		{uint16(365), "365"},
		{-7, "-7"},
		{at, "2026-11-26 14:04:05.123000000"},
	}
	for _, c := range cases {
		got, err := paramText(c.in)
		if err != nil || got != c.want {
			t.Errorf("paramText(%#v) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := paramText(struct{}{}); err == nil {
		t.Error("paramText(struct{}) gave no error")
	}
}

func TestAssignInt(t *testing.T) {
	var u16 uint16
	if err := assign(&u16, uint64(70000)); err == nil {
		t.Error("70000 into uint16: no error")
	}
	if err := assign(&u16, uint16(365)); err != nil || u16 != 365 {
		t.Errorf("365 into uint16: %d, %v", u16, err)
	}
	var i64 int64
	if err := assign(&i64, int64(math.MinInt64)); err != nil || i64 != math.MinInt64 {
		t.Errorf("MinInt64: %d, %v", i64, err)
	}
	var u64 uint64
	if err := assign(&u64, int8(-1)); err == nil {
		t.Error("-1 into uint64: no error")
	}
	var i int
	if err := assign(&i, uint32(42)); err != nil || i != 42 {
		t.Errorf("42 into int: %d, %v", i, err)
	}
}

// BenchmarkEncode measures the Go side of an insert: RowBinary encoding of
// a 10,000-row batch (validation is in eventstore).
func BenchmarkEncode(b *testing.B) {
	now := time.Now().UTC()
	rec := eventstore.Record{
		ID: "01JDB000000001000000000001", OrgID: "org_001", Action: "member.invited", Category: "members",
		OccurredAt: now, ReceivedAt: now, ActorType: "user", ActorID: "usr_00001234", ActorName: "Ada Lovelace",
		ActorEmail: "user1@example.com", ActorIP: "203.0.113.7",
		ActorUserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		TargetTypes:    []string{"member", "team"}, TargetIDs: []string{"usr_1", "team_1"}, TargetNames: []string{"Grace", "Platform"},
		Outcome: "success", Details: `{"role":"admin","seats":3,"note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`,
		RequestID: "req_0123456789abcdef", TraceID: "0123456789abcdef0123456789abcdef", Source: "api",
		Raw: make([]byte, 800), StreamSeq: 1, RetentionDays: 90,
	}
	recs := make([]eventstore.Record, 10000)
	for i := range recs {
		recs[i] = rec
	}
	b.ReportAllocs()
	for b.Loop() {
		buf := make([]byte, 0, len(recs)*recordSize(&rec))
		for i := range recs {
			buf = appendRecord(buf, &recs[i])
		}
		b.SetBytes(int64(len(buf)))
	}
}
