package tlogapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/tlogapi"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/tlog/treestore/treestoretest"
)

// The engine allows one session per process. AUDIT_TLOG_BENCH_DIR keeps
// its data directory, so the synthetic tree is generated once.
func TestMain(m *testing.M) { chdbtest.MainIn(m, os.Getenv("AUDIT_TLOG_BENCH_DIR")) }

// orgAuth authorizes every request for one org: the benchmark measures
// the proof, not the token check.
type orgAuth string

func (o orgAuth) Authorize(*http.Request, string) (string, string, error) {
	return string(o), "bench", nil
}

// BenchmarkInclusion10M measures GET /v1/integrity/inclusion over one org
// whose tree has AUDIT_TLOG_BENCH_EVENTS leaves (default 10,000,000),
// generated directly in the tree store's tables (treestoretest.Synthesize,
// checked against the root computed in Go) into AUDIT_TLOG_BENCH_DIR and
// kept. 1,000 requests for random events through HTTP, each proof checked
// against the signed checkpoint's root; it reports p50 and p99 and the
// tree's bytes on disk per event. Run with make bench-tlog.
func BenchmarkInclusion10M(b *testing.B) {
	if os.Getenv("AUDIT_TLOG_BENCH_DIR") == "" {
		b.Skip("set AUDIT_TLOG_BENCH_DIR to a kept directory (make bench-tlog does)")
	}
	n := uint64(10_000_000)
	if v := os.Getenv("AUDIT_TLOG_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.ParseUint(v, 10, 64); err != nil || n == 0 {
			b.Fatalf("AUDIT_TLOG_BENCH_EVENTS=%q", v)
		}
	}
	ctx := context.Background()
	db := fmt.Sprintf("tlogbench_%d", n)
	const org = "org_big"
	es := chdbtest.StoreOn(b, db)
	trees, err := treestore.New(es.Engine(), treestore.Config{Database: db})
	if err != nil {
		b.Fatal(err)
	}
	ckpt, err := trees.LatestCheckpoint(ctx, org)
	if err != nil {
		ckpt = synthesize(b, es.Engine(), trees, db, org, n)
	}
	bytes := nodeBytes(b, db)
	b.Logf("org %s: %d events, tree %d bytes on disk, checkpoint size %d", org, n, bytes, ckpt.Size)

	api := tlogapi.New(orgAuth(org), trees, nil, "audit.bench", nil, nil)
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	const requests = 1000
	for range b.N {
		var lat []time.Duration
		for range requests {
			i := rng.Uint64N(n)
			u := srv.URL + "/v1/integrity/inclusion?" + url.Values{"event_id": {treestoretest.EventID(org, i)}}.Encode()
			start := time.Now()
			res, err := http.Get(u)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			lat = append(lat, time.Since(start))
			if res.StatusCode != http.StatusOK {
				b.Fatalf("%s: %d %s", u, res.StatusCode, body)
			}
			var p tlog.InclusionProofData
			if err := json.Unmarshal(body, &p); err != nil {
				b.Fatal(err)
			}
			leaf := rfc6962.DefaultHasher.HashLeaf(treestoretest.LeafData(i))
			if p.LogIndex != i || p.TreeSize != ckpt.Size {
				b.Fatalf("proof of index %d at size %d, want %d at %d", p.LogIndex, p.TreeSize, i, ckpt.Size)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, p.TreeSize, leaf, p.Hashes, ckpt.Root); err != nil {
				b.Fatalf("index %d: %v", i, err)
			}
		}
		slices.Sort(lat)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		b.ReportMetric(float64(n), "events")
		b.ReportMetric(float64(bytes)/float64(n), "tree_bytes/event")
	}
}

// synthesize generates the org's tree, checks its stored root against the
// one computed in Go, merges its parts and stores a signed checkpoint.
func synthesize(b *testing.B, eng eventstore.Engine, trees *treestore.Store, db, org string, n uint64) treestore.StoredCheckpoint {
	ctx := context.Background()
	start := time.Now()
	if size, err := trees.Size(ctx, org); err != nil || size != 0 {
		b.Fatalf("org %s has %d leaves (%v) but no checkpoint: remove %s", org, size, err, os.Getenv("AUDIT_TLOG_BENCH_DIR"))
	}
	if err := treestoretest.Synthesize(ctx, eng, db, org, n); err != nil {
		b.Fatal(err)
	}
	for _, t := range []string{"tlog_runs", "tlog_leaves_by_event"} {
		if err := eng.Exec(ctx, "OPTIMIZE TABLE `"+db+"`."+t+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("generated %d leaves in %s", n, time.Since(start).Round(time.Millisecond))
	want, err := treestoretest.Root(n)
	if err != nil {
		b.Fatal(err)
	}
	root, err := tlog.Root(ctx, trees, org, n)
	if err != nil {
		b.Fatal(err)
	}
	if !bytesEqual(root, want) {
		b.Fatalf("the stored tree's root %x is not the synthetic tree's %x", root, want)
	}
	skey, _, err := tlog.GenerateKey("audit.bench")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	note, err := signer.Sign(tlog.Origin("audit.bench", org), n, root)
	if err != nil {
		b.Fatal(err)
	}
	c := treestore.StoredCheckpoint{Org: org, Size: n, Root: root, Note: note, KeyHash: signer.KeyHash(), SignedAt: time.Now().UTC()}
	if err := trees.PutCheckpoint(ctx, c); err != nil {
		b.Fatal(err)
	}
	return c
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// nodeBytes is the size on disk of the tree: the active parts of tlog_runs
// and of its key table by event id.
func nodeBytes(b *testing.B, db string) uint64 {
	out, err := chdbtest.Session(b).Query(context.Background(),
		"SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '"+db+"' AND table IN ('tlog_runs', 'tlog_leaves_by_event') AND active", "TabSeparated")
	if err != nil {
		b.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
