package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query"
)

// loadSynthetic fills db.events with n events numbered from 0, generated
// inside the engine (INSERT ... SELECT FROM numbers()), unless the table
// already holds n rows. orgs > 1 spreads them over orgs with Zipf-like
// sizes (org_0001 largest); orgs == 1 puts them all in org_0001. Events
// occur over the last 90 days.
func loadSynthetic(tb testing.TB, db string, n, orgs int) {
	tb.Helper()
	ctx := context.Background()
	out, err := chdbtest.Session(tb).Query(ctx, "SELECT count() FROM `"+db+"`.events", "TabSeparated")
	if err == nil && strings.TrimSpace(string(out)) == strconv.Itoa(n) {
		return
	}
	if _, err := chdbtest.Session(tb).Query(ctx, "TRUNCATE TABLE IF EXISTS `"+db+"`.events", "TabSeparated"); err != nil {
		tb.Fatal(err)
	}
	org := "'org_0001'"
	if orgs > 1 {
		org = fmt.Sprintf("concat('org_', leftPad(toString(toUInt32(floor(pow(%d, (cityHash64(number, 1) %% 1000000) / 1000000.)))), 4, '0'))", orgs+1)
	}
	now := time.Now().UnixMilli()
	start := time.Now()
	const chunk = 1_000_000
	for from := 0; from < n; from += chunk {
		size := min(chunk, n-from)
		q := `INSERT INTO ` + "`" + db + "`" + `.events (id, org_id, action, category, occurred_at, received_at, actor_type, actor_id,
  actor_name, actor_email, actor_ip, actor_user_agent, target_types, target_ids, target_names, outcome, reason, details,
  request_id, trace_id, source, raw, stream_seq, retention_days)
SELECT
  concat('01K', leftPad(hex(number), 16, '0')) AS id,
  ` + org + ` AS org_id,
  arrayElement(['member.invited','member.removed','member.role_changed','auth.login_succeeded','auth.login_failed',
    'api_key.created','api_key.deleted','policy.updated','billing.plan_changed','organization.renamed'], cityHash64(number, 3) % 10 + 1) AS action,
  splitByChar('.', action)[1] AS category,
  fromUnixTimestamp64Milli(toInt64(` + strconv.FormatInt(now, 10) + ` - cityHash64(number, 2) % 7776000000), 'UTC') AS occurred_at,
  occurred_at + toIntervalMillisecond(cityHash64(number, 4) % 2000) AS received_at,
  'user' AS actor_type,
  concat('usr_', toString(cityHash64(number, 5) % 2000)) AS actor_id,
  'Ada Lovelace' AS actor_name,
  concat('user', toString(cityHash64(number, 5) % 2000), '@example.com') AS actor_email,
  concat('203.0.', toString(number % 256), '.', toString(cityHash64(number, 6) % 256)) AS actor_ip,
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36' AS actor_user_agent,
  ['member', 'team'] AS target_types,
  [concat('usr_', toString(cityHash64(number, 7) % 100000)), concat('team_', toString(cityHash64(number, 8) % 1000))] AS target_ids,
  [arrayElement(['Grace Hopper','Alan Turing','Ada Lovelace','Edsger Dijkstra','Barbara Liskov','Ken Thompson','Frances Allen','Donald Knuth'], cityHash64(number, 9) % 8 + 1),
   arrayElement(['Platform','Payments','Security','Growth'], cityHash64(number, 10) % 4 + 1)] AS target_names,
  if(cityHash64(number, 11) % 10 = 0, 'failure', 'success') AS outcome,
  if(outcome = 'failure', 'denied', '') AS reason,
  concat('{"role":"admin","seats":', toString(cityHash64(number, 12) % 500), '}') AS details,
  concat('req_', hex(cityHash64(number, 13))) AS request_id,
  hex(cityHash64(number, 14)) AS trace_id,
  'api' AS source,
  concat('{"id":"', id, '","org_id":"', org_id, '","action":"', action, '","details":', details, ',"actor":{"id":"', actor_id, '","user_agent":"', actor_user_agent, '"}}') AS raw,
  number AS stream_seq,
  toUInt16(365) AS retention_days
FROM numbers(` + strconv.Itoa(from) + `, ` + strconv.Itoa(size) + `)`
		if _, err := chdbtest.Session(tb).Query(ctx, q, "TabSeparated"); err != nil {
			tb.Fatalf("load: %v", err)
		}
	}
	// Let background merges settle, as they would under steady ingestion.
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := chdbtest.Session(tb).Query(ctx, "SELECT count() FROM system.merges WHERE database = '"+db+"'", "TabSeparated")
		if err != nil || strings.TrimSpace(string(out)) == "0" {
			break
		}
		time.Sleep(2 * time.Second)
	}
	tb.Logf("loaded %d events into %s in %s (%.0f rows/s)", n, db, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds())
}

func parts(tb testing.TB, db string) string {
	out, err := chdbtest.Session(tb).Query(context.Background(), "SELECT count(), sum(rows) FROM system.parts WHERE database = '"+db+"' AND table = 'events' AND active", "TabSeparated")
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// procStatus returns a field of /proc/self/status in KiB.
func procStatus(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// TestExportMillion exports 1,000,000 events of one org over HTTP and
// reports the process's peak RSS during the export. It runs when
// AUDIT_EXPORT_1M=1 (make bench-query runs it).
func TestExportMillion(t *testing.T) {
	if os.Getenv("AUDIT_EXPORT_1M") != "1" {
		t.Skip("set AUDIT_EXPORT_1M=1 (or run make bench-query) to export 1,000,000 events")
	}
	const n = 1_000_000
	e := newEnvDB(t, query.Config{}, "bench_export_1m")
	loadSynthetic(t, "bench_export_1m", n, 1)
	tok := reader(t, "org_0001")
	for _, format := range []string{"ndjson", "csv"} {
		runtime.GC()
		// Reset the peak RSS (VmHWM) so it measures the export alone.
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		before := procStatus("VmRSS")
		var maxHeap uint64
		done := make(chan struct{})
		go func() {
			var ms runtime.MemStats
			for {
				select {
				case <-done:
					return
				case <-time.After(200 * time.Millisecond):
					runtime.ReadMemStats(&ms)
					maxHeap = max(maxHeap, ms.HeapInuse)
				}
			}
		}()
		start := time.Now()
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/export?format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		lines, bytes := countLines(t, res.Body)
		res.Body.Close()
		close(done)
		elapsed := time.Since(start)
		want := int64(n)
		if format == "csv" {
			want++ // header
		}
		if res.StatusCode != 200 || lines != want {
			t.Fatalf("%s export: status %d, %d lines", format, res.StatusCode, lines)
		}
		t.Logf("export %s: %d events, %.0f MB in %s (%.0f events/s); RSS before %d MiB, peak during export %d MiB; Go heap in use peak %d MiB",
			format, n, float64(bytes)/1e6, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(),
			before>>10, procStatus("VmHWM")>>10, maxHeap>>20)
	}
}

func countLines(t *testing.T, r io.Reader) (lines, n int64) {
	buf := make([]byte, 256<<10)
	for {
		k, err := r.Read(buf)
		n += int64(k)
		for _, c := range buf[:k] {
			if c == '\n' {
				lines++
			}
		}
		if err == io.EOF {
			return lines, n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkQuery10M measures the API over 10,000,000 events of 1,000 orgs
// with Zipf-like sizes on the embedded engine, through HTTP, and reports
// p50 and p99 of four reads. The data is generated once into
// AUDIT_QUERY_BENCH_DIR and kept. Run with make bench-query.
func BenchmarkQuery10M(b *testing.B) {
	if os.Getenv("AUDIT_QUERY_BENCH_DIR") == "" {
		b.Skip("set AUDIT_QUERY_BENCH_DIR to a kept directory (make bench-query does)")
	}
	const db = "bench10m"
	e := newEnvDB(b, query.Config{MaxLimit: 200}, db)
	loadSynthetic(b, db, 10_000_000, 1000)
	b.Logf("active parts, rows: %s", parts(b, db))

	// Org sizes, largest first.
	out, err := chdbtest.Session(b).Query(context.Background(), "SELECT org_id, count() c FROM `"+db+"`.events GROUP BY org_id ORDER BY c DESC", "TabSeparated")
	if err != nil {
		b.Fatal(err)
	}
	type org struct {
		id string
		n  int
	}
	var orgs []org
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		id, c, _ := strings.Cut(l, "\t")
		n, _ := strconv.Atoi(c)
		orgs = append(orgs, org{id, n})
	}
	b.Logf("%d orgs; largest %d events, median %d, smallest %d", len(orgs), orgs[0].n, orgs[len(orgs)/2].n, orgs[len(orgs)-1].n)
	rng := rand.New(rand.NewPCG(7, 7))
	// Requests pick the org of a random event, so large orgs are asked
	// about as often as they hold events, plus one request in four for a
	// uniformly random org.
	pick := func() org {
		if rng.IntN(4) == 0 {
			return orgs[rng.IntN(len(orgs))]
		}
		k := rng.IntN(10_000_000)
		for _, o := range orgs {
			if k < o.n {
				return o
			}
			k -= o.n
		}
		return orgs[0]
	}
	toks := map[string]string{}
	tokFor := func(o string) string {
		if t, ok := toks[o]; ok {
			return t
		}
		toks[o] = token(b, o, auditapi.PermRead)
		return toks[o]
	}
	get := func(o string, v url.Values) (time.Duration, eventPage) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/events?"+v.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+tokFor(o))
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		d := time.Since(start)
		if res.StatusCode != 200 {
			b.Fatalf("%s: %d %s", v.Encode(), res.StatusCode, body)
		}
		var p eventPage
		if err := json.Unmarshal(body, &p); err != nil {
			b.Fatal(err)
		}
		return d, p
	}
	const samples = 200
	report := func(name string, ds []time.Duration, target time.Duration) {
		slices.Sort(ds)
		p50, p99 := ds[len(ds)/2], ds[len(ds)*99/100]
		verdict := "ok"
		if p99 > target {
			verdict = "OVER TARGET"
		}
		b.Logf("%-28s n=%d p50=%6.1fms p99=%6.1fms max=%6.1fms (target p99 <= %s: %s)", name, len(ds),
			float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, float64(ds[len(ds)-1].Microseconds())/1000, target, verdict)
		b.ReportMetric(float64(p99.Microseconds())/1000, strings.NewReplacer(" ", "_", ",", "", "(", "", ")", "", "=", "").Replace(name)+"_p99_ms")
	}
	for i := 0; i < b.N; i++ {
		// Warm up the engine's caches a little, as a running service has.
		for range 20 {
			get(pick().id, url.Values{"limit": {"50"}})
		}
		var first, actor, search, page100 []time.Duration
		for range samples {
			d, _ := get(pick().id, url.Values{"limit": {"50"}})
			first = append(first, d)
		}
		for range samples {
			d, _ := get(pick().id, url.Values{"limit": {"50"}, "actor": {"usr_" + strconv.Itoa(rng.IntN(2000))}})
			actor = append(actor, d)
		}
		words := []string{"hopper", "turing", "payments", "login", "api_key", "security"}
		for range samples {
			d, _ := get(pick().id, url.Values{"limit": {"50"}, "q": {words[rng.IntN(len(words))]}})
			search = append(search, d)
		}
		// Page 100 needs orgs of at least 5,000 events; walk 99 pages of
		// several of them once, then time page 100 repeatedly.
		type at struct{ org, cursor string }
		var starts []at
		for _, o := range orgs {
			if o.n < 5050 || len(starts) == 10 {
				continue
			}
			v := url.Values{"limit": {"50"}}
			for range 99 {
				_, p := get(o.id, v)
				v.Set("cursor", *p.NextCursor)
			}
			starts = append(starts, at{o.id, v.Get("cursor")})
		}
		for j := range samples {
			s := starts[j%len(starts)]
			d, _ := get(s.org, url.Values{"limit": {"50"}, "cursor": {s.cursor}})
			page100 = append(page100, d)
		}
		report("first page", first, 30*time.Millisecond)
		report("first page, actor filter", actor, 60*time.Millisecond)
		report("search (q=word)", search, 150*time.Millisecond)
		report("page 100 by cursor", page100, 50*time.Millisecond)
	}
}

// BenchmarkReadLogIndex measures the first page of GET /v1/events over
// 1,000,000 events of one org, every one logged, with and without the
// log_index lookup, in the same run (so the two can be compared).
//
//	AUDIT_CHDB_LIB=... go test -run '^$' -bench ReadLogIndex -benchtime 200x ./
func BenchmarkReadLogIndex(b *testing.B) {
	db := chdbtest.Database(b)
	e := newEnvDB(b, query.Config{MaxLimit: 200}, db)
	const n = 1_000_000
	loadSynthetic(b, db, n, 1)
	// Every event logged: one leaf each, in receipt order, in runs of
	// treestore.MaxRun leaves.
	if _, err := chdbtest.Session(b).Query(context.Background(), "INSERT INTO `"+db+"`.tlog_runs (org_id, level, first_idx, hashes, event_ids, stream_seqs)"+
		" SELECT org_id, 0, min(i), unhex(arrayStringConcat(arrayMap(x -> x.2, arraySort(groupArray((i, hex(SHA256(id)))))))),"+
		" arrayMap(x -> x.2, arraySort(groupArray((i, id)))), arrayMap(x -> x.2, arraySort(groupArray((i, stream_seq))))"+
		" FROM (SELECT org_id, id, stream_seq, row_number() OVER (ORDER BY received_at, id) - 1 AS i FROM `"+db+"`.events)"+
		" GROUP BY org_id, intDiv(i, "+strconv.Itoa(treestore.MaxRun)+")", "TabSeparated"); err != nil {
		b.Fatal(err)
	}
	prod, err := producer.New(e.js)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close(context.Background()) //nolint:errcheck
	plain, err := query.New(query.Config{MaxLimit: 200, Auth: httpapi.AuthConfig{HMACSecret: secret}, RatePerSecond: 1e6, RateBurst: 1e6},
		query.Deps{Events: e.store, Settings: e.settings, Recorder: prod})
	if err != nil {
		b.Fatal(err)
	}
	without := httptest.NewServer(plain.Handler())
	defer without.Close()
	tok := token(b, "org_0001", auditapi.PermRead)
	for _, limit := range []int{50, 200} {
		for _, c := range []struct {
			name string
			url  string
		}{{"without", without.URL}, {"with", e.srv.URL}} {
			b.Run(fmt.Sprintf("limit=%d/%s", limit, c.name), func(b *testing.B) {
				for b.Loop() {
					req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/events?limit=%d", c.url, limit), nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Fatalf("%d %s", res.StatusCode, body)
					}
					if got := bytes.Count(body, []byte(`"log_index":`)); (c.name == "with") != (got == limit) {
						b.Fatalf("%s: %d events with a log_index", c.name, got)
					}
				}
			})
		}
	}
}
