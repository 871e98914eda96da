package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/transparency-dev/merkle/compact"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/tlogapi"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/producer"
)

// customer is what an org's customer keeps: the verifier keys it pinned,
// the signed checkpoints it was sent and an export.
type customer struct {
	org    string
	vs     *tlog.Verifiers
	origin string
	cps    []tlog.Checkpoint
	export []byte
	ids    []string // event ids in log order, from the export
	lines  []tlog.Entry
}

// verify is `auditctl verify --export … --checkpoint …`: the export
// against the newest checkpoint kept, the older ones narrowing a root
// mismatch down.
func (c *customer) verify(t *testing.T, export []byte, edges *tlog.Edges) tlog.Report {
	t.Helper()
	latest := c.cps[len(c.cps)-1]
	rep, err := tlog.VerifyExport(bytes.NewReader(export), tlog.VerifyOptions{Checkpoint: latest, Earlier: c.cps[:len(c.cps)-1], Edges: edges})
	if err != nil {
		t.Fatalf("%s: verify: %v", c.org, err)
	}
	t.Logf("%s: %s", c.org, rep)
	return rep
}

// TestTamperingInTheStoreIsDetected runs auditd, lets a customer of each
// of several orgs keep signed checkpoints and an export of its log, then
// edits the store directly, as an operator with full access to ClickHouse
// could — one kind of edit per org — and checks that the offline verifier
// (what `auditctl verify` runs) names the first bad index and the kind of
// each edit in a fresh export, while the untouched org's exports verify
// and an org whose oldest events expired still verifies the rest with its
// edges.
func TestTamperingInTheStoreIsDetected(t *testing.T) {
	cfg := baseConfig(t)
	cfg.NATSListen = freeAddr(t)
	cfg.DefaultPlan = "enterprise"
	cfg.TlogDeployment, cfg.TlogCheckpointInterval = "audit.test", 200*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	procs := make(chan *roles.Process, 1)
	go func() { done <- run(ctx, cfg, zaptest.NewLogger(t), func(p *roles.Process) { procs <- p }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("auditd did not stop within 30s")
		}
	})
	base := "http://" + cfg.HTTPAddr
	waitReady(t, base, done)
	p := <-procs
	eng, db := p.Writer.Engine(), p.Writer.Database()
	exec := func(sql string) {
		t.Helper()
		if err := eng.Exec(context.Background(), strings.ReplaceAll(sql, "DB.", "`"+db+"`.")); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	keys, err := NATSKeyring(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pnc, _ := connectTCP(t, "nats://"+cfg.NATSListen, keys[natsauth.Producer])
	defer pnc.Close()
	pjs, _ := jetstream.New(pnc)
	prod, err := producer.New(pjs)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background()) //nolint:errcheck
	signKey, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	call := func(org, path string) []byte {
		t.Helper()
		tok, err := auditapi.Mint(signKey, auditapi.TokenSpec{OrgID: org, Subject: "customer", Permissions: []string{auditapi.PermRead}, TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			return nil
		}
		return b
	}
	// Events of the partition org from index 4 to 7 occurred two months
	// ago: a partition of their own (the events table is partitioned by
	// month of occurred_at).
	old := time.Now().UTC().AddDate(0, -2, 0)
	emit := func(org string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			ev := producer.AuthLogin(org, producer.User(fmt.Sprintf("u_%d", i), fmt.Sprintf("User %d", i), fmt.Sprintf("u%d@example.com", i)), "password")
			if org == "org_partition" && i >= 4 && i < 8 {
				ev.OccurredAt = old.Add(time.Duration(i) * time.Second)
			}
			if _, err := prod.Emit(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Millisecond) // distinct received_at
		}
	}
	// waitSigned waits for a signed checkpoint of the org's log of size n
	// and returns it, as the customer receives it.
	waitSigned := func(c *customer, n uint64) tlog.Checkpoint {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; {
			if note := call(c.org, "/v1/integrity/checkpoint"); note != nil {
				cp, err := c.vs.OpenCheckpoint(note, c.origin)
				if err != nil {
					t.Fatal(err)
				}
				if cp.Size == n {
					return cp
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no signed checkpoint of size %d within 60s", c.org, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	const n = 12
	cases := []string{"untouched", "alter", "lightweight", "delete", "forged", "swap", "partition", "rewrite", "retention"}
	custs := map[string]*customer{}
	for _, name := range cases {
		c := &customer{org: "org_" + name}
		var k tlogapi.Keys
		if err := json.Unmarshal(call(c.org, "/v1/integrity/keys"), &k); err != nil {
			t.Fatal(err)
		}
		if c.vs, err = tlog.NewVerifiers(k.All...); err != nil {
			t.Fatal(err)
		}
		c.origin = k.Origin
		custs[name] = c
		// The rewrite org's customer also kept a checkpoint of size 8.
		if name == "rewrite" {
			emit(c.org, 0, 8)
			c.cps = append(c.cps, waitSigned(c, 8))
			emit(c.org, 8, n)
		} else {
			emit(c.org, 0, n)
		}
	}
	for _, name := range cases {
		c := custs[name]
		c.cps = append(c.cps, waitSigned(c, n))
		c.export = call(c.org, "/v1/integrity/export")
		sc := bufio.NewScanner(bytes.NewReader(c.export))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			x, err := tlog.ParseEntry(sc.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			c.lines = append(c.lines, x)
			c.ids = append(c.ids, x.Event.ID)
		}
		if len(c.ids) != n {
			t.Fatalf("%s: the export holds %d events, want %d", c.org, len(c.ids), n)
		}
		if rep := c.verify(t, c.export, nil); rep.Problem != nil || rep.Events != n {
			t.Fatalf("%s: the export before any edit: %s", c.org, rep)
		}
	}

	// The operator's edits, straight in ClickHouse.
	id := func(name string, i int) string { return custs[name].ids[i] }
	where := func(name string, i int) string {
		return fmt.Sprintf("org_id = 'org_%s' AND id = '%s'", name, id(name, i))
	}
	exec("ALTER TABLE DB.events UPDATE outcome = 'failure', reason = 'edited' WHERE " + where("alter", 3) + " SETTINGS mutations_sync = 2")
	// A lightweight update needs the block number columns; the operator
	// turns them on first.
	exec("ALTER TABLE DB.events MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1")
	exec("UPDATE DB.events SET actor_ip = '198.51.100.1' WHERE " + where("lightweight", 5))
	exec("ALTER TABLE DB.events DELETE WHERE " + where("delete", 6) + " SETTINGS mutations_sync = 2")
	// A forged event with a fresh id, received (by its row) between the
	// logged events 4 and 5.
	exec("CREATE TABLE DB.forged ENGINE = Memory AS SELECT * REPLACE ('01JFORGED0000000000000000X' AS id, received_at + toIntervalMillisecond(1) AS received_at) FROM (SELECT * FROM DB.events WHERE " + where("forged", 4) + ")")
	exec("INSERT INTO DB.events SELECT * FROM DB.forged")
	// Events 7 and 8 trade contents (each row keeps its id).
	exec("CREATE TABLE DB.swapped ENGINE = Memory AS SELECT * REPLACE (if(id = '" + id("swap", 7) + "', '" + id("swap", 8) + "', '" + id("swap", 7) + "') AS id) FROM (SELECT * FROM DB.events WHERE org_id = 'org_swap' AND id IN ('" + id("swap", 7) + "', '" + id("swap", 8) + "'))")
	exec("ALTER TABLE DB.events DELETE WHERE org_id = 'org_swap' AND id IN ('" + id("swap", 7) + "', '" + id("swap", 8) + "') SETTINGS mutations_sync = 2")
	exec("INSERT INTO DB.events SELECT * FROM DB.swapped")
	exec("ALTER TABLE DB.events DROP PARTITION " + old.Format("200601"))
	// An edit of event 9 with the tree's stored hashes rewritten to match
	// it: leaf 9 and every node above it, so the store is a consistent
	// tree again (of another root).
	exec("ALTER TABLE DB.events UPDATE reason = 'rewritten', outcome = 'failure' WHERE " + where("rewrite", 9) + " SETTINGS mutations_sync = 2")
	rewriteTree(t, custs["rewrite"], eng, db, exec)
	// Retention: the four oldest events of the org expire (their
	// retention set to nothing, then the TTL applied).
	exec("ALTER TABLE DB.events UPDATE retention_days = 0 WHERE org_id = 'org_retention' AND id IN ('" +
		strings.Join(custs["retention"].ids[:4], "', '") + "') SETTINGS mutations_sync = 2")
	exec("ALTER TABLE DB.events MATERIALIZE TTL SETTINGS mutations_sync = 2")
	exec("OPTIMIZE TABLE DB.events FINAL")

	for _, tc := range []struct {
		name  string
		kind  string
		index uint64
		event string
	}{
		{"alter", tlog.KindChanged, 3, id("alter", 3)},
		{"lightweight", tlog.KindChanged, 5, id("lightweight", 5)},
		{"delete", tlog.KindMissing, 6, ""},
		{"forged", tlog.KindInserted, 5, "01JFORGED0000000000000000X"},
		{"swap", tlog.KindChanged, 7, id("swap", 7)},
		{"partition", tlog.KindMissing, 4, ""},
		// Against the earlier checkpoint of size 8, the edit lies in 8..11.
		{"rewrite", tlog.KindRoot, 8, id("rewrite", 8)},
	} {
		c := custs[tc.name]
		rep := c.verify(t, call(c.org, "/v1/integrity/export"), nil)
		if rep.Problem == nil {
			t.Errorf("%s: the edit was not detected: %s", c.org, rep)
			continue
		}
		if rep.Problem.Kind != tc.kind || rep.Problem.Index != tc.index || (tc.event != "" && rep.Problem.EventID != tc.event) {
			t.Errorf("%s: %s; want %s at index %d (event %q)", c.org, rep, tc.kind, tc.index, tc.event)
		}
		if tc.name == "rewrite" && rep.Problem.IndexTo != n-1 {
			t.Errorf("%s: %s; want the span 8..%d", c.org, rep, n-1)
		}
	}
	// The stored tree of the rewrite org is consistent in itself: only the
	// customer's checkpoints expose it.
	rebuilt := rebuiltCheckpoint(t, custs["rewrite"], eng, db)
	if rep, err := tlog.VerifyExport(bytes.NewReader(call("org_rewrite", "/v1/integrity/export")), tlog.VerifyOptions{Checkpoint: rebuilt}); err != nil || rep.Problem != nil {
		t.Errorf("org_rewrite against its rewritten tree: %v %v", rep, err)
	}
	// The operator also holds the signing key (here the development key in
	// the data directory) and signs the rewritten tree, as a writer
	// restarted on it would. The customer receives that checkpoint too: it
	// and the fresh export agree, and the checkpoints kept from before the
	// rewrite still expose it.
	signer := logSigner(t, cfg)
	rw := custs["rewrite"]
	note, err := signer.Sign(rw.origin, rebuilt.Size, rebuilt.Root)
	if err != nil {
		t.Fatal(err)
	}
	resigned, err := rw.vs.OpenCheckpoint(note, rw.origin)
	if err != nil {
		t.Fatalf("the operator's checkpoint does not verify with the published key: %v", err)
	}
	kept := *rw
	kept.cps = append(slices.Clone(rw.cps), resigned)
	if rep := kept.verify(t, call(rw.org, "/v1/integrity/export"), nil); rep.Problem == nil || rep.Problem.Kind != tlog.KindRoot || rep.Problem.Index != 8 {
		t.Errorf("org_rewrite re-signed with the log's key: %s; want root, from index 8", rep)
	}

	// The untouched org: the saved export and a fresh one verify.
	u := custs["untouched"]
	if rep := u.verify(t, call(u.org, "/v1/integrity/export"), nil); rep.Problem != nil || rep.Events != n {
		t.Errorf("untouched, fresh export: %s", rep)
	}
	if rep := u.verify(t, u.export, nil); rep.Problem != nil {
		t.Errorf("untouched, saved export: %s", rep)
	}

	// Retention: the expired rows are gone from the store; the whole log
	// no longer verifies (index 0 is missing), the remaining range does,
	// with its edges.
	r := custs["retention"]
	rows, err := eng.Query(context.Background(), "SELECT count() FROM `"+db+"`.events WHERE org_id = 'org_retention'")
	if err != nil {
		t.Fatal(err)
	}
	var left uint64
	for rows.Next() {
		if err := rows.Scan(&left); err != nil {
			t.Fatal(err)
		}
	}
	rows.Close()
	if left != n-4 {
		t.Errorf("org_retention holds %d rows after expiry, want %d", left, n-4)
	}
	// The export of the whole log starts at index 4 now: a verifier needs
	// the edges of what is left.
	if _, err := tlog.VerifyExport(bytes.NewReader(call(r.org, "/v1/integrity/export")), tlog.VerifyOptions{Checkpoint: r.cps[0]}); err == nil || !strings.Contains(err.Error(), "[4, 12)") {
		t.Errorf("retention, whole log without edges: %v; want an export of [4, 12) that needs edges", err)
	}
	var edges tlog.Edges
	if err := json.Unmarshal(call(r.org, fmt.Sprintf("/v1/integrity/range?begin=4&end=%d", n)), &edges); err != nil {
		t.Fatal(err)
	}
	if rep := r.verify(t, call(r.org, fmt.Sprintf("/v1/integrity/export?begin=4&end=%d", n)), &edges); rep.Problem != nil || rep.First != 4 || rep.Events != n-4 {
		t.Errorf("retention, remaining range with its edges: %s", rep)
	}
}

// rewriteTree rewrites the rewrite org's stored tree so that it matches
// the edited event 9: the leaf recomputed from the edited content and
// every node above it, their bytes replaced inside the stored runs.
func rewriteTree(t *testing.T, c *customer, eng eventstore.Engine, db string, exec func(string)) {
	t.Helper()
	ctx := context.Background()
	trees, err := treestore.New(eng, treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := trees.Leaves(ctx, c.org, 0, uint64(len(c.ids)))
	if err != nil {
		t.Fatal(err)
	}
	edited := c.lines[9]
	edited.Event.Reason, edited.Event.Outcome = "rewritten", "failure"
	leaf9, err := tlog.EntryLeaf(edited)
	if err != nil {
		t.Fatal(err)
	}
	// Every node before and after the edit: leaf 9 and the nodes above
	// it differ.
	before, after := map[compact.NodeID][]byte{}, map[compact.NodeID][]byte{}
	rb, ra := tlog.NewEmptyRange(0), tlog.NewEmptyRange(0)
	for i, l := range leaves {
		h := l.Hash
		if i == 9 {
			h = leaf9
		}
		if err := rb.Append(l.Hash, func(id compact.NodeID, hash []byte) { before[id] = bytes.Clone(hash) }); err != nil {
			t.Fatal(err)
		}
		if err := ra.Append(h, func(id compact.NodeID, hash []byte) { after[id] = bytes.Clone(hash) }); err != nil {
			t.Fatal(err)
		}
	}
	// Each changed node's 32 bytes rewritten in place, in the run that
	// holds it.
	changed := 0
	for id, h := range after {
		if bytes.Equal(h, before[id]) {
			continue
		}
		changed++
		off := fmt.Sprintf("(%d - first_idx) * 32", id.Index)
		exec(fmt.Sprintf("ALTER TABLE DB.tlog_runs UPDATE hashes = concat(substring(hashes, 1, %s), unhex('%x'), substring(hashes, %s + 33))"+
			" WHERE org_id = '%s' AND level = %d AND first_idx <= %d AND first_idx + intDiv(length(hashes), 32) > %d SETTINGS mutations_sync = 2",
			off, h, off, c.org, id.Level, id.Index, id.Index))
	}
	if changed < 2 {
		t.Fatalf("the edit changed %d nodes of the tree", changed)
	}
}

// rebuiltCheckpoint is a checkpoint of the rewritten tree as the store
// now has it (unsigned: only to show the export matches the tree).
func rebuiltCheckpoint(t *testing.T, c *customer, eng eventstore.Engine, db string) tlog.Checkpoint {
	t.Helper()
	trees, err := treestore.New(eng, treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(len(c.ids))
	root, err := tlog.Root(context.Background(), trees, c.org, size)
	if err != nil {
		t.Fatal(err)
	}
	cp := c.cps[len(c.cps)-1]
	if bytes.Equal(root, cp.Root) {
		t.Fatal("the rewritten tree has the signed root")
	}
	cp.Root = root
	return cp
}

// logSigner is the log's own signer: the development key auditd keeps in
// its data directory, as an operator holding the key would load it.
func logSigner(t *testing.T, cfg Config) *tlog.Signer {
	t.Helper()
	skey, err := tlog.LoadOrCreateDevKey(cfg.DataDir, cfg.TlogDeployment)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}
