package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/schemas/actionfilter"
)

// Field is what a search condition tests.
type Field int

// The fields a Cond can test.
const (
	// FieldActor matches actor_id exactly.
	FieldActor Field = iota + 1
	// FieldAction matches the action exactly, or as a glob when the value
	// contains '*' (any run of characters), e.g. "member.*".
	FieldAction
	// FieldCategory matches the category exactly.
	FieldCategory
	// FieldTarget matches when any target id equals the value.
	FieldTarget
	// FieldOutcome matches the outcome exactly.
	FieldOutcome
	// FieldText matches when the value occurs, case-insensitively, in the
	// action, a target id or a target name.
	FieldText
)

// String returns the field's name as the query syntax spells it.
func (f Field) String() string {
	switch f {
	case FieldActor:
		return "actor"
	case FieldAction:
		return "action"
	case FieldCategory:
		return "category"
	case FieldTarget:
		return "target"
	case FieldOutcome:
		return "outcome"
	case FieldText:
		return "text"
	}
	return "field(" + strconv.Itoa(int(f)) + ")"
}

// Cond is one condition of a Filter: the field matches any of Values, or,
// with Not, none of them.
type Cond struct {
	Field  Field
	Values []string
	Not    bool
}

// Filter selects events of one org. Every condition must hold (AND);
// within a condition the values are alternatives (OR). The zero Filter
// selects every live event.
type Filter struct {
	Conds []Cond
	// Since, when set, keeps events with occurred_at >= Since.
	Since time.Time
	// Until, when set, keeps events with occurred_at < Until.
	Until time.Time
	// ReceivedBy, when set, keeps events with received_at <= ReceivedBy: a
	// snapshot bound, so events ingested later (even with an old
	// occurred_at) stay out of a walk through pages.
	ReceivedBy time.Time
	// ReceivedSince, when set, keeps events with received_at >=
	// ReceivedSince.
	ReceivedSince time.Time
}

// Key is a position in the newest-first order (occurred_at DESC, id DESC).
type Key struct {
	OccurredAt time.Time
	ID         string
}

// KeyOf returns the position of e.
func KeyOf(e schemas.Event) Key {
	return Key{OccurredAt: e.OccurredAt.UTC().Truncate(time.Millisecond), ID: e.ID}
}

// Page says which slice of the newest-first order Search returns.
type Page struct {
	// After, when set, starts the page just after this position (keyset
	// pagination): events strictly older, or as old with a smaller id.
	After *Key
	// Limit is the most events returned, 1..MaxSearchLimit.
	Limit int
}

// Search limits.
const (
	// MaxSearchLimit is the largest Page.Limit.
	MaxSearchLimit = 10000
	// MaxConds bounds the conditions of a Filter, and MaxCondValues the
	// values of one condition.
	MaxConds      = 32
	MaxCondValues = 32
	// MaxValueLen is the longest value a condition accepts, in bytes.
	MaxValueLen = 512
)

// ErrBadFilter is wrapped by the errors Search returns for a filter or page
// it refuses; nothing was queried.
var ErrBadFilter = errors.New("eventstore: bad filter")

// searchWindows split the newest-first walk into occurred_at ranges below
// the starting point. Most pages are filled from the first, narrow range,
// which the partition and primary key prune to a few granules; older
// ranges are read only when the newer ones run out.
var searchWindows = []time.Duration{7 * 24 * time.Hour, 60 * 24 * time.Hour}

// exportPage is how many rows Stream reads per statement.
const exportPage = 5000

// Search returns up to page.Limit live events of the org matching f,
// newest first (occurred_at DESC, id DESC), each once, starting after
// page.After. Every value is a bound parameter. It is safe for concurrent
// use.
func (s *Store) Search(ctx context.Context, orgID string, f Filter, page Page) ([]schemas.Event, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !schemas.ValidOrgID(orgID) {
		return nil, fmt.Errorf("%w: invalid org id %q", ErrBadFilter, orgID)
	}
	if page.Limit < 1 || page.Limit > MaxSearchLimit {
		return nil, fmt.Errorf("%w: limit %d outside 1-%d", ErrBadFilter, page.Limit, MaxSearchLimit)
	}
	where, params, err := filterSQL(orgID, f)
	if err != nil {
		return nil, err
	}
	if page.After != nil {
		where += " AND occurred_at <= {after_t:DateTime64(3, 'UTC')} AND (occurred_at < {after_t:DateTime64(3, 'UTC')} OR id < {after_id:String})"
		params = append(params, P("after_t", page.After.OccurredAt.UTC()), P("after_id", page.After.ID))
	}

	if actors := actorOnly(f); actors != nil && page.Limit <= maxKeyLookup {
		got, ok, err := s.searchByActor(ctx, orgID, actors, f, page, where, params)
		if err != nil || ok {
			return got, err
		}
		// The key table disagrees with the events table (a retention
		// change under way): take the general path.
	}

	// The walk starts at the newest point any result can have.
	start := time.Now().UTC()
	if page.After != nil && page.After.OccurredAt.Before(start) {
		start = page.After.OccurredAt
	}
	if !f.Until.IsZero() && f.Until.Before(start) {
		start = f.Until
	}
	windows := searchWindows
	if selective(f) {
		// Few rows match anywhere: one statement over the org's range, with
		// the skip indexes pruning, beats several window statements.
		windows = nil
	}
	var out []schemas.Event
	var upper time.Time // exclusive upper bound of the next window; zero: none
	for i := 0; i <= len(windows) && len(out) < page.Limit; i++ {
		w, ps := where, params
		var lower time.Time
		if i < len(windows) {
			lower = start.Add(-windows[i]).Truncate(time.Millisecond)
			if !f.Since.IsZero() && !lower.After(f.Since) {
				lower = time.Time{} // the filter's own bound ends the walk
			}
		}
		if !lower.IsZero() {
			w += " AND occurred_at >= {win_lo:DateTime64(3, 'UTC')}"
			ps = append(ps, P("win_lo", lower))
		}
		if !upper.IsZero() {
			w += " AND occurred_at < {win_hi:DateTime64(3, 'UTC')}"
			ps = append(ps, P("win_hi", upper))
		}
		got, err := s.searchRange(ctx, w, ps, page.Limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		if lower.IsZero() {
			break
		}
		upper = lower
	}
	return out, nil
}

// maxKeyLookup is the largest page served through the actor key table:
// each key becomes a bound parameter of the second statement.
const maxKeyLookup = 500

// actorOnly returns the actor ids of a filter whose only condition is a
// positive actor condition (time bounds allowed), or nil.
func actorOnly(f Filter) []string {
	if len(f.Conds) != 1 || f.Conds[0].Field != FieldActor || f.Conds[0].Not {
		return nil
	}
	return f.Conds[0].Values
}

// searchByActor serves an actor-only filter in two statements: the newest
// keys of the actors from the events_by_actor table (a primary-key range),
// then those events from the events table, which applies the whole filter
// again. ok is false when the two tables disagree — the second statement
// found fewer events than keys — so the caller must take the general path.
func (s *Store) searchByActor(ctx context.Context, orgID string, actors []string, f Filter, page Page, where string, params []Param) (_ []schemas.Event, ok bool, _ error) {
	var b strings.Builder
	kp := []Param{P("org", orgID), P("limit", page.Limit)}
	b.WriteString("org_id = {org:String} AND " + live + " AND actor_id IN (")
	for i, a := range actors {
		if i > 0 {
			b.WriteString(", ")
		}
		name := "a" + strconv.Itoa(i)
		b.WriteString("{" + name + ":String}")
		kp = append(kp, P(name, a))
	}
	b.WriteString(")")
	if !f.Since.IsZero() {
		b.WriteString(" AND occurred_at >= {since:DateTime64(3, 'UTC')}")
		kp = append(kp, P("since", f.Since.UTC()))
	}
	if !f.Until.IsZero() {
		b.WriteString(" AND occurred_at < {until:DateTime64(3, 'UTC')}")
		kp = append(kp, P("until", f.Until.UTC()))
	}
	if !f.ReceivedBy.IsZero() {
		b.WriteString(" AND received_at <= {received_by:DateTime64(3, 'UTC')}")
		kp = append(kp, P("received_by", f.ReceivedBy.UTC()))
	}
	if !f.ReceivedSince.IsZero() {
		b.WriteString(" AND received_at >= {received_since:DateTime64(3, 'UTC')}")
		kp = append(kp, P("received_since", f.ReceivedSince.UTC()))
	}
	if page.After != nil {
		b.WriteString(" AND occurred_at <= {after_t:DateTime64(3, 'UTC')} AND (occurred_at < {after_t:DateTime64(3, 'UTC')} OR id < {after_id:String})")
		kp = append(kp, P("after_t", page.After.OccurredAt.UTC()), P("after_id", page.After.ID))
	}
	rows, err := s.eng.Query(ctx, "SELECT occurred_at, id FROM "+s.actors+" FINAL WHERE "+b.String()+
		" ORDER BY occurred_at DESC, id DESC LIMIT {limit:UInt32} "+finalSettings, kp...)
	if err != nil {
		return nil, false, fmt.Errorf("eventstore: search by actor: %w", err)
	}
	var ids []string
	var newest, oldest time.Time
	for rows.Next() {
		var t time.Time
		var id string
		if err := rows.Scan(&t, &id); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("eventstore: search by actor: %w", err)
		}
		if len(ids) == 0 {
			newest = t
		}
		oldest = t
		ids = append(ids, id)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, false, fmt.Errorf("eventstore: search by actor: %w", err)
	}
	if len(ids) == 0 {
		return nil, true, nil
	}
	var in strings.Builder
	in.WriteString(" AND occurred_at >= {k_lo:DateTime64(3, 'UTC')} AND occurred_at <= {k_hi:DateTime64(3, 'UTC')} AND id IN (")
	params = append(params, P("k_lo", oldest.UTC()), P("k_hi", newest.UTC()))
	for i, id := range ids {
		if i > 0 {
			in.WriteString(", ")
		}
		name := "k" + strconv.Itoa(i)
		in.WriteString("{" + name + ":String}")
		params = append(params, P(name, id))
	}
	in.WriteString(")")
	out, err := s.searchRange(ctx, where+in.String(), params, len(ids))
	if err != nil {
		return nil, false, err
	}
	return out, len(out) == len(ids), nil
}

// selective reports whether f requires an actor or a target id, which
// match few rows and have skip indexes or cheap array tests.
func selective(f Filter) bool {
	for _, c := range f.Conds {
		if !c.Not && (c.Field == FieldActor || c.Field == FieldTarget) {
			return true
		}
	}
	return false
}

func (s *Store) searchRange(ctx context.Context, where string, params []Param, limit int) ([]schemas.Event, error) {
	params = append(params, P("limit", limit))
	rows, err := s.eng.Query(ctx, "SELECT "+eventColumns+" FROM "+s.table+" FINAL WHERE "+where+
		" ORDER BY occurred_at DESC, id DESC LIMIT {limit:UInt32} "+finalSettings, params...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: search: %w", err)
	}
	defer rows.Close()
	out := make([]schemas.Event, 0, min(limit, 256))
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: search: %w", err)
	}
	return out, nil
}

// Stream calls fn with every live event of the org matching f, newest
// first, each once, reading the table in keyset pages of a few thousand
// rows so memory stays flat whatever the result's size. Set
// f.ReceivedBy to make the result a snapshot. It stops at the first error
// fn returns, or when ctx ends, and returns that error. It is safe for
// concurrent use; on the embedded engine other statements run between its
// pages.
func (s *Store) Stream(ctx context.Context, orgID string, f Filter, fn func(schemas.Event) error) error {
	page := Page{Limit: exportPage}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		evs, err := s.Search(ctx, orgID, f, page)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(evs) < page.Limit {
			return nil
		}
		k := KeyOf(evs[len(evs)-1])
		page.After = &k
	}
}

// filterSQL returns the WHERE clause selecting the org's live rows that
// match f, and its parameters. Field names come from a fixed list; every
// value is a parameter.
func filterSQL(orgID string, f Filter) (string, []Param, error) {
	if len(f.Conds) > MaxConds {
		return "", nil, fmt.Errorf("%w: %d conditions, at most %d", ErrBadFilter, len(f.Conds), MaxConds)
	}
	var b strings.Builder
	b.WriteString("org_id = {org:String} AND " + live)
	params := []Param{P("org", orgID)}
	n := 0
	next := func(v string) string {
		name := "v" + strconv.Itoa(n)
		n++
		params = append(params, P(name, v))
		return name
	}
	for _, c := range f.Conds {
		if len(c.Values) == 0 || len(c.Values) > MaxCondValues {
			return "", nil, fmt.Errorf("%w: %s needs 1-%d values", ErrBadFilter, c.Field, MaxCondValues)
		}
		alts := make([]string, 0, len(c.Values))
		for _, v := range c.Values {
			if len(v) > MaxValueLen {
				return "", nil, fmt.Errorf("%w: %s value longer than %d bytes", ErrBadFilter, c.Field, MaxValueLen)
			}
			var e string
			switch c.Field {
			case FieldActor:
				e = "actor_id = {" + next(v) + ":String}"
			case FieldAction:
				if strings.Contains(v, "*") {
					e = "action LIKE {" + next(actionfilter.Like(v)) + ":String}"
				} else {
					e = "action = {" + next(v) + ":String}"
				}
			case FieldCategory:
				e = "category = {" + next(v) + ":String}"
			case FieldTarget:
				e = "has(target_ids, {" + next(v) + ":String})"
			case FieldOutcome:
				e = "outcome = {" + next(v) + ":String}"
			case FieldText:
				if v == "" {
					return "", nil, fmt.Errorf("%w: empty search word", ErrBadFilter)
				}
				e = "positionCaseInsensitiveUTF8(" + searchText + ", {" + next(v) + ":String}) > 0"
			default:
				return "", nil, fmt.Errorf("%w: unknown field %d", ErrBadFilter, int(c.Field))
			}
			alts = append(alts, e)
		}
		b.WriteString(" AND ")
		if c.Not {
			b.WriteString("NOT ")
		}
		b.WriteString("(" + strings.Join(alts, " OR ") + ")")
	}
	if !f.Since.IsZero() {
		b.WriteString(" AND occurred_at >= {since:DateTime64(3, 'UTC')}")
		params = append(params, P("since", f.Since.UTC()))
	}
	if !f.Until.IsZero() {
		b.WriteString(" AND occurred_at < {until:DateTime64(3, 'UTC')}")
		params = append(params, P("until", f.Until.UTC()))
	}
	if !f.ReceivedBy.IsZero() {
		b.WriteString(" AND received_at <= {received_by:DateTime64(3, 'UTC')}")
		params = append(params, P("received_by", f.ReceivedBy.UTC()))
	}
	if !f.ReceivedSince.IsZero() {
		b.WriteString(" AND received_at >= {received_since:DateTime64(3, 'UTC')}")
		params = append(params, P("received_since", f.ReceivedSince.UTC()))
	}
	return b.String(), params, nil
}

// searchText is what a FieldText word is looked for in: the action, the
// target ids and the target names, separated by a newline so a word cannot
// match across two of them.
const searchText = "concat(action, '\\n', arrayStringConcat(target_ids, '\\n'), '\\n', arrayStringConcat(target_names, '\\n'))"
