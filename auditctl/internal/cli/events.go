package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/takumo/audit/auditctl/internal/client"
	"github.com/takumo/audit/schemas"
)

// pageLimit is the largest page the API serves.
const pageLimit = 200

func runEvents(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("events", env)
	var c conn
	var f filters
	c.register(fs, env)
	f.register(fs, true)
	n := fs.Int("n", 50, "how many events to show, newest first (0: every match)")
	out := fs.String("o", "table", "output: table, json (an array) or ndjson (one event a line)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out != "table" && *out != "json" && *out != "ndjson" {
		return fmt.Errorf("%w: -o must be table, json or ndjson", errUsage)
	}
	if *n < 0 {
		return fmt.Errorf("%w: -n must not be negative", errUsage)
	}
	q, err := f.values(env.Now())
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var evs []schemas.Event
	for {
		limit := pageLimit
		if *n > 0 {
			limit = min(pageLimit, *n-len(evs))
		}
		q.Set("limit", strconv.Itoa(limit))
		p, err := cl.Events(ctx, q)
		if err != nil {
			return err
		}
		evs = append(evs, p.Data...)
		if p.NextCursor == nil || (*n > 0 && len(evs) >= *n) {
			break
		}
		q.Set("cursor", *p.NextCursor)
	}
	switch *out {
	case "json":
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if evs == nil {
			evs = []schemas.Event{}
		}
		return enc.Encode(evs)
	case "ndjson":
		enc := json.NewEncoder(env.Stdout)
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	if len(evs) == 0 {
		fmt.Fprintln(env.Stderr, "no events match")
		return nil
	}
	tw := newTable(env.Stdout)
	for _, e := range evs {
		tw.row(e)
	}
	return tw.Flush()
}

// table prints events as aligned columns. Event content is made safe for
// a terminal: control characters (escape sequences) are shown as \u
// escapes, never sent raw.
type table struct {
	*tabwriter.Writer
}

func newTable(w io.Writer) table {
	t := table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	fmt.Fprintln(t, "TIME\tACTION\tACTOR\tOUTCOME\tTARGETS")
	return t
}

func (t table) row(e schemas.Event) {
	fmt.Fprintln(t, strings.Join(cells(e), "\t"))
}

// tailLine lays out a row in fixed columns: tail cannot align on rows it
// has not seen yet.
func tailLine(c []string) string {
	return fmt.Sprintf("%-19s  %-32s  %-30s  %-8s  %s", c[0], c[1], c[2], c[3], c[4])
}

// cells are an event's table cells, safe for a terminal.
func cells(e schemas.Event) []string {
	actor := cmp.Or(e.Actor.Name, e.Actor.Email, e.Actor.ID, e.Actor.Type)
	if e.Actor.ID != "" && actor != e.Actor.ID {
		actor += " (" + e.Actor.ID + ")"
	}
	var targets []string
	for _, tg := range e.Targets {
		s := tg.Type + ":" + tg.ID
		if tg.Name != "" {
			s += " " + strconv.Quote(tg.Name)
		}
		targets = append(targets, s)
	}
	outcome := e.Outcome
	if e.Reason != "" {
		outcome += ": " + e.Reason
	}
	return []string{
		e.OccurredAt.Local().Format("2006-01-02 15:04:05"),
		safe(e.Action), safe(actor), safe(outcome), safe(strings.Join(targets, ", ")),
	}
}

// safe makes a value printable on one terminal line and one table cell.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, escapeControls(s))
}

func escapeControls(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return r != '\t' && r != '\n' && r != '\r' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
}

// Tail polling. Each poll asks for the events with occurred_at >= the
// newest shown minus lookback, newest first, walking next_cursor; events
// already shown (remembered by id within that window) are skipped, the rest
// are printed oldest first. The lookback catches events that reach the
// store after newer ones (producer clocks, ingestion batches).
const (
	defaultInterval = 2 * time.Second
	defaultLookback = 5 * time.Minute
	maxPollPages    = 50
)

func runTail(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("tail", env)
	var c conn
	var f filters
	c.register(fs, env)
	f.register(fs, false)
	n := fs.Int("n", 10, "recent events to show first")
	interval := fs.Duration("interval", defaultInterval, "time between polls")
	lookback := fs.Duration("lookback", defaultLookback, "how far before the newest shown event each poll looks, for events recorded late")
	out := fs.String("o", "table", "output: table or ndjson")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out != "table" && *out != "ndjson" {
		return fmt.Errorf("%w: -o must be table or ndjson", errUsage)
	}
	if *interval < 100*time.Millisecond || *lookback < 0 || *n < 0 {
		return fmt.Errorf("%w: --interval must be at least 100ms, --lookback and -n not negative", errUsage)
	}
	base, err := f.values(env.Now())
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	t := &tailer{cl: cl, base: base, lookback: *lookback, seen: map[string]time.Time{}}
	print := func(evs []schemas.Event) error {
		if *out == "ndjson" {
			enc := json.NewEncoder(env.Stdout)
			for _, e := range evs {
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
			return nil
		}
		for _, e := range evs {
			if _, err := fmt.Fprintln(env.Stdout, tailLine(cells(e))); err != nil {
				return err
			}
		}
		return nil
	}
	if *out == "table" {
		fmt.Fprintln(env.Stdout, tailLine([]string{"TIME", "ACTION", "ACTOR", "OUTCOME", "TARGETS"}))
	}
	first, err := t.start(ctx, *n)
	if err != nil {
		return err
	}
	if err := print(first); err != nil {
		return err
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		evs, err := t.poll(ctx)
		var ae *client.APIError
		switch {
		case errors.As(err, &ae) && ae.Code() == "rate-limited":
			continue // the next tick retries
		case err != nil:
			return err
		}
		if err := print(evs); err != nil {
			return err
		}
	}
}

// tailer remembers what tail has shown.
type tailer struct {
	cl       *client.Client
	base     url.Values
	lookback time.Duration
	newest   time.Time            // occurred_at of the newest shown event
	seen     map[string]time.Time // ids shown, by occurred_at, within the lookback
}

// start returns the n most recent events, oldest first.
func (t *tailer) start(ctx context.Context, n int) ([]schemas.Event, error) {
	q := clone(t.base)
	q.Set("limit", strconv.Itoa(max(1, min(n, pageLimit))))
	p, err := t.cl.Events(ctx, q)
	if err != nil {
		return nil, err
	}
	evs := p.Data
	if n == 0 {
		evs = nil
	}
	t.newest = time.Now()
	if len(p.Data) > 0 {
		t.newest = p.Data[0].OccurredAt
	}
	// Everything already in the lookback window counts as seen, shown or
	// not (n may be small): only what is recorded from now on follows.
	if _, err := t.poll(ctx); err != nil {
		return nil, err
	}
	for _, e := range p.Data {
		t.seen[e.ID] = e.OccurredAt
	}
	return t.fresh(evs), nil
}

// poll returns the events recorded since the last poll, oldest first.
func (t *tailer) poll(ctx context.Context) ([]schemas.Event, error) {
	from := t.newest.Add(-t.lookback)
	q := clone(t.base)
	q.Set("since", from.UTC().Format(time.RFC3339Nano))
	q.Set("limit", strconv.Itoa(pageLimit))
	var evs []schemas.Event
	for range maxPollPages {
		p, err := t.cl.Events(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, e := range p.Data {
			if _, ok := t.seen[e.ID]; !ok {
				evs = append(evs, e)
			}
		}
		if p.NextCursor == nil {
			break
		}
		q.Set("cursor", *p.NextCursor)
	}
	for _, e := range evs {
		t.seen[e.ID] = e.OccurredAt
		if e.OccurredAt.After(t.newest) {
			t.newest = e.OccurredAt
		}
	}
	for id, at := range t.seen {
		if at.Before(t.newest.Add(-t.lookback)) {
			delete(t.seen, id)
		}
	}
	return t.fresh(evs), nil
}

// fresh sorts events oldest first.
func (t *tailer) fresh(evs []schemas.Event) []schemas.Event {
	slices.SortFunc(evs, func(a, b schemas.Event) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), cmp.Compare(a.ID, b.ID))
	})
	return evs
}

func clone(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
