// Package hec encodes audit events as Splunk HTTP Event Collector envelopes
// for the /services/collector/event endpoint:
//
//	{"time":1780317296.789,"host":"...","source":"takumo-audit","sourcetype":"takumo:audit",
//	 "index":"...","event":{...the v1 event...},
//	 "fields":{"event_id":"...","org_id":"...","action":"...","category":"...","outcome":"..."}}
//
// time is occurred_at in epoch seconds with milliseconds; index is omitted
// when not configured; fields are flat indexed fields, event_id among them
// so searches can deduplicate. A batch is envelopes concatenated (the
// transport separates them with newlines), never a JSON array. JSON
// escaping carries every value exactly and nothing is truncated.
package hec

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/takumo/audit/schemas"
)

// Options fill the envelope's metadata. The zero value is usable.
type Options struct {
	Host       string
	Source     string // default "takumo-audit"
	SourceType string // default "takumo:audit"
	Index      string // empty: the token's default index
}

// Format encodes HEC envelopes. It is immutable and safe for concurrent use.
type Format struct {
	meta     []byte // ,"host":...,"source":...,"sourcetype":...,"index":...
	ckptMeta []byte // the same with the checkpoints' sourcetype
}

// New returns a Format.
func New(o Options) *Format {
	if o.Source == "" {
		o.Source = "takumo-audit"
	}
	if o.SourceType == "" {
		o.SourceType = "takumo:audit"
	}
	meta := func(sourcetype string) []byte {
		var m []byte
		add := func(k, v string) {
			if v == "" {
				return
			}
			q, _ := json.Marshal(v)
			m = append(m, `,"`+k+`":`...)
			m = append(m, q...)
		}
		add("host", o.Host)
		add("source", o.Source)
		add("sourcetype", sourcetype)
		add("index", o.Index)
		return m
	}
	return &Format{meta: meta(o.SourceType), ckptMeta: meta(o.SourceType + CheckpointSourceTypeSuffix)}
}

// Name is "hec".
func (*Format) Name() string { return "hec" }

type fields struct {
	EventID  string `json:"event_id"`
	OrgID    string `json:"org_id"`
	Action   string `json:"action"`
	Category string `json:"category,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
}

// appendTime appends epoch seconds with milliseconds.
func appendTime(b []byte, ms int64) []byte {
	b = strconv.AppendInt(b, ms/1000, 10)
	return append(b, '.', byte('0'+ms%1000/100), byte('0'+ms%100/10), byte('0'+ms%10))
}

// Append appends one envelope to b.
func (f *Format) Append(b []byte, ev schemas.Event) ([]byte, error) {
	js, err := json.Marshal(ev)
	if err != nil {
		return b, fmt.Errorf("hec: event: %w", err)
	}
	fl, err := json.Marshal(fields{EventID: ev.ID, OrgID: ev.OrgID, Action: ev.Action, Category: ev.Category, Outcome: ev.Outcome})
	if err != nil {
		return b, fmt.Errorf("hec: fields: %w", err)
	}
	ms := ev.OccurredAt.UnixMilli()
	b = append(b, `{"time":`...)
	if ms < 0 {
		return b, fmt.Errorf("hec: occurred_at before 1970")
	}
	b = appendTime(b, ms)
	b = append(b, f.meta...)
	b = append(b, `,"event":`...)
	b = append(b, js...)
	b = append(b, `,"fields":`...)
	b = append(b, fl...)
	return append(b, '}'), nil
}
