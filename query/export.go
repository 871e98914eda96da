package query

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// csvHeader is the column order of a CSV export.
var csvHeader = []string{"id", "occurred_at", "received_at", "org_id", "action", "category", "outcome", "reason",
	"actor_type", "actor_id", "actor_name", "actor_email", "actor_ip", "actor_user_agent",
	"targets", "details", "request_id", "trace_id", "source", "log_index"}

// flushEvery is how many rows an export writes between flushes; each such
// batch gets its log indices in one lookup.
const flushEvery = 1000

func (s *Service) export(w http.ResponseWriter, r *http.Request, c *auditapi.Claims) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.fail(w, badParam("query", "the query string is malformed"))
		return
	}
	pf, err := parseFilter(v, "format")
	if err != nil {
		s.fail(w, err)
		return
	}
	format := "ndjson"
	if f := v["format"]; len(f) > 0 {
		if len(f) > 1 || (f[0] != "csv" && f[0] != "ndjson") {
			s.fail(w, badParam("format", "must be csv or ndjson"))
			return
		}
		format = f[0]
	}
	now := s.cfg.Now().UTC()
	pf.f.ReceivedBy = now.Add(s.cfg.SnapshotSkew).Truncate(time.Millisecond)

	// The export is recorded before a row leaves: no record, no export.
	a := actor(r, c)
	started, err := s.recordExport(r, exportEvent(c.OrgID, a, format, pf.given, "started", 0))
	if err != nil {
		httpapi.NotRecorded().Write(w)
		return
	}

	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	name := "audit-" + c.OrgID + "-" + now.Format("20060102T150405Z") + "." + format
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 64<<10)
	var (
		rows  int64
		write func(indexed) error
		cw    *csv.Writer
	)
	if format == "csv" {
		cw = csv.NewWriter(bw)
		if err := cw.Write(csvHeader); err != nil {
			return
		}
		rec := make([]string, len(csvHeader))
		write = func(x indexed) error {
			csvRecord(rec, x)
			return cw.Write(rec)
		}
	} else {
		write = func(x indexed) error {
			b, err := x.MarshalJSON()
			if err != nil {
				return err
			}
			if _, err := bw.Write(b); err != nil {
				return err
			}
			return bw.WriteByte('\n')
		}
	}
	sent := false
	// Rows go out flushEvery at a time, each batch with its log indices
	// found in one lookup.
	batch := make([]schemas.Event, 0, flushEvery)
	emit := func() error {
		xs, err := s.withLogIndex(r.Context(), c.OrgID, batch)
		if err != nil {
			return err
		}
		batch = batch[:0]
		for _, x := range xs {
			if err := write(x); err != nil {
				return err
			}
			sent = true
			rows++
		}
		if cw != nil {
			cw.Flush()
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		_ = rc.Flush()
		return nil
	}
	err = s.deps.Events.Stream(r.Context(), c.OrgID, pf.f, func(e schemas.Event) error {
		batch = append(batch, e)
		if len(batch) == flushEvery {
			return emit()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = emit()
	}
	if err == nil {
		if cw != nil {
			cw.Flush()
			err = cw.Error()
		}
		if err == nil {
			err = bw.Flush()
		}
	}
	if err != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
		s.record.Undo(ctx, started, fmt.Sprintf("the export ended early after %d rows: %v", rows, err))
		cancel()
		if !sent && !errors.Is(err, context.Canceled) {
			s.fail(w, err)
			return
		}
		s.log.Warn("export ended early", zap.String("org_id", c.OrgID), zap.Int64("rows", rows), zap.Error(err))
		// The status is sent: break the connection so the client sees an
		// incomplete body rather than a short file that looks whole.
		panic(http.ErrAbortHandler)
	}
	if _, err := s.recordExport(r, exportEvent(c.OrgID, a, format, pf.given, "completed", rows)); err != nil {
		s.log.Error("export done but its completion was not recorded", zap.String("org_id", c.OrgID), zap.Int64("rows", rows), zap.Error(err))
	}
}

// exportEvent is an export's audit.exported event: the filter is the
// query parameters as given; details.phase is "started" (written before
// the first row, rows 0) or "completed" (with the rows sent).
func exportEvent(org string, a schemas.Actor, format string, filter map[string]any, phase string, rows int64) schemas.Event {
	ev := producer.AuditExported(org, a, format, filter, rows)
	ev.Details["phase"] = phase
	return ev
}

// recordExport writes an audit.exported event, even when the client went
// away.
func (s *Service) recordExport(r *http.Request, ev schemas.Event) ([]schemas.Event, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	return s.record.Write(ctx, ev)
}

// csvRecord fills rec with x's columns in csvHeader order (log_index empty
// while not logged). Cells a spreadsheet would run as a formula are
// prefixed with a quote.
func csvRecord(rec []string, x indexed) {
	e := x.event
	received := ""
	if e.ReceivedAt != nil {
		received = e.ReceivedAt.UTC().Format(schemas.TimeLayout)
	}
	targets, _ := json.Marshal(e.Targets)
	if e.Targets == nil {
		targets = []byte("[]")
	}
	details, _ := json.Marshal(e.Details)
	if e.Details == nil {
		details = []byte("{}")
	}
	vals := []string{e.ID, e.OccurredAt.UTC().Format(schemas.TimeLayout), received, e.OrgID, e.Action, e.Category, e.Outcome, e.Reason,
		e.Actor.Type, e.Actor.ID, e.Actor.Name, e.Actor.Email, e.Actor.IP, e.Actor.UserAgent,
		string(targets), string(details), e.Context.RequestID, e.Context.TraceID, e.Context.Source, ""}
	if x.logIndex != nil {
		vals[len(vals)-1] = strconv.FormatUint(*x.logIndex, 10)
	}
	for i, v := range vals {
		rec[i] = defuse(v)
	}
}

// defuse keeps a spreadsheet from evaluating a cell as a formula.
func defuse(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
