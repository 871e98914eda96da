package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/takumo/audit/auditctl/internal/cli"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/schemas"
)

// memNodes keeps the nodes of a tree, as the tree store does.
type memNodes map[compact.NodeID][]byte

func (m memNodes) Nodes(_ context.Context, _ string, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := m[id]
		if !ok {
			return nil, fmt.Errorf("node %v missing", id)
		}
		out[i] = h
	}
	return out, nil
}

// logFixture writes an export of n events, checkpoints after 10 and after
// n, and a consistency proof between them, into dir.
func logFixture(t *testing.T, dir string, n int) (vkey string, lines []string) {
	skey, vkey, err := tlog.GenerateKey("audit.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := tlog.NewSigner(skey)
	r := tlog.NewEmptyRange(0)
	nodes := memNodes{}
	salt := bytes.Repeat([]byte{5}, 32)
	sign := func(name string) {
		root, _ := r.GetRootHash(nil)
		msg, err := signer.Sign("audit.test/acme", r.End(), root)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), msg, 0o644)
	}
	for i := 0; i < n; i++ {
		rec := time.Date(2026, 11, 30, 12, 0, i, 0, time.UTC)
		ev := schemas.Event{ID: fmt.Sprintf("01JDCLI%019d", i), OrgID: "acme", Action: "auth.login", Category: "auth",
			OccurredAt: rec, ReceivedAt: &rec, Outcome: schemas.OutcomeSuccess,
			Actor: schemas.Actor{Type: schemas.ActorUser, ID: "usr_1", Email: "ada@example.com"}}
		leaf, c, err := tlog.Leaf(ev, tlog.Salts{"usr_1": salt})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Append(leaf, func(id compact.NodeID, h []byte) { nodes[id] = bytes.Clone(h) }); err != nil {
			t.Fatal(err)
		}
		idx := uint64(i)
		b, _ := json.Marshal(tlog.Entry{Event: ev, LogIndex: &idx, Integrity: tlog.Integrity{
			LeafHash: hex.EncodeToString(leaf), Commitments: c, Salts: map[string]string{"usr_1": hex.EncodeToString(salt)}}})
		lines = append(lines, string(b))
		if i == 9 {
			sign("old.ckpt")
		}
	}
	sign("new.ckpt")
	p, err := tlog.ConsistencyProof(context.Background(), nodes, "acme", 10, uint64(n))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(tlog.ConsistencyProofData{Size1: 10, Size2: uint64(n), Hashes: p})
	os.WriteFile(filepath.Join(dir, "consistency.json"), b, 0o644)
	ip, err := tlog.InclusionProof(context.Background(), nodes, "acme", 7, uint64(n))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(tlog.InclusionProofData{LogIndex: 7, TreeSize: uint64(n), Hashes: ip})
	os.WriteFile(filepath.Join(dir, "inclusion.json"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "entry.json"), []byte(lines[7]+"\n"), 0o644)
	return vkey, lines
}

func runCLI(t *testing.T, args ...string) (string, int) {
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errb})
	return out.String() + errb.String(), code
}

func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	vkey, lines := logFixture(t, dir, 25)
	p := func(n string) string { return filepath.Join(dir, n) }
	os.WriteFile(p("export.ndjson"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)

	out, code := runCLI(t, "verify", "--export", p("export.ndjson"), "--checkpoint", p("new.ckpt"), "--checkpoint", p("old.ckpt"),
		"--key", vkey, "--origin", "audit.test/acme")
	if code != 0 || !strings.HasPrefix(out, "verified: 25 events, indices 0..24, consistent with checkpoint size 25, root ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}

	// A checkpoint kept as a webhook delivered it, or as CEF and LEEF carry
	// it (base64), is accepted as well.
	note, _ := os.ReadFile(p("new.ckpt"))
	body, _ := json.Marshal(map[string]any{"type": "audit.checkpoint", "timestamp": "2026-06-01T00:00:00.000Z",
		"data": map[string]any{"org_id": "acme", "origin": "audit.test/acme", "tree_size": 25, "note": string(note)}})
	os.WriteFile(p("webhook.json"), body, 0o644)
	os.WriteFile(p("cef-cs4.txt"), []byte(base64.StdEncoding.EncodeToString(note)+"\n"), 0o644)
	for _, f := range []string{"webhook.json", "cef-cs4.txt"} {
		out, code := runCLI(t, "verify", "--export", p("export.ndjson"), "--checkpoint", p(f), "--key", vkey)
		if code != 0 || !strings.HasPrefix(out, "verified: 25 events") {
			t.Fatalf("%s: exit %d:\n%s", f, code, out)
		}
	}

	// The operator edits one row: the first bad index is named.
	tampered := append([]string(nil), lines...)
	tampered[13] = strings.Replace(tampered[13], `"outcome":"success"`, `"outcome":"failure","reason":"x"`, 1)
	os.WriteFile(p("tampered.ndjson"), []byte(strings.Join(tampered, "\n")+"\n"), 0o644)
	out, code = runCLI(t, "verify", "--export", p("tampered.ndjson"), "--checkpoint", p("new.ckpt"), "--key", vkey)
	if code != 1 || !strings.Contains(out, "NOT verified: changed: index 13, event 01JDCLI0000000000000000013") {
		t.Fatalf("exit %d:\n%s", code, out)
	}

	// A line JSON readers would read differently (a member twice) is not
	// read one way and verified: the verdict names its line.
	ambiguous := append([]string(nil), lines...)
	ambiguous[4] = strings.Replace(ambiguous[4], `"outcome":"success"`, `"outcome":"failure","outcome":"success"`, 1)
	os.WriteFile(p("ambiguous.ndjson"), []byte(strings.Join(ambiguous, "\n")+"\n"), 0o644)
	out, code = runCLI(t, "verify", "--export", p("ambiguous.ndjson"), "--checkpoint", p("new.ckpt"), "--key", vkey)
	if code != 1 || !strings.HasPrefix(out, "NOT verified: tlog: unreadable export: line 5: ") || !strings.Contains(out, "duplicate") {
		t.Fatalf("exit %d:\n%s", code, out)
	}

	// A checkpoint signed by another key is refused.
	_, other, _ := tlog.GenerateKey("audit.test")
	if out, code := runCLI(t, "verify", "--export", p("export.ndjson"), "--checkpoint", p("new.ckpt"), "--key", other); code != 1 || !strings.Contains(out, "does not verify") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// The keys named with --key are the only ones trusted: a key in the
	// environment (say, the served keys, set by a script) is not added.
	withEnv := func(args ...string) (string, int) {
		var out bytes.Buffer
		code := cli.Main(context.Background(), args, cli.Env{Stdout: &out, Stderr: &out, Getenv: func(k string) string {
			if k == "AUDIT_TLOG_VERIFIER_KEYS" {
				return vkey
			}
			return ""
		}})
		return out.String(), code
	}
	if out, code := withEnv("verify", "--export", p("export.ndjson"), "--checkpoint", p("new.ckpt"), "--key", other); code != 1 || !strings.Contains(out, "does not verify") {
		t.Fatalf("--key beside AUDIT_TLOG_VERIFIER_KEYS: exit %d:\n%s", code, out)
	}
	if out, code := withEnv("verify", "--export", p("export.ndjson"), "--checkpoint", p("new.ckpt")); code != 0 {
		t.Fatalf("AUDIT_TLOG_VERIFIER_KEYS alone: exit %d:\n%s", code, out)
	}

	out, code = runCLI(t, "verify", "consistency", "--old", p("old.ckpt"), "--new", p("new.ckpt"), "--proof", p("consistency.json"), "--key", vkey)
	if code != 0 || !strings.HasPrefix(out, "consistent: checkpoint size 10 root ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	out, code = runCLI(t, "verify", "inclusion", "--entry", p("entry.json"), "--checkpoint", p("new.ckpt"), "--proof", p("inclusion.json"), "--key", vkey)
	if code != 0 || !strings.HasPrefix(out, "included: event 01JDCLI0000000000000000007 at index 7") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	os.WriteFile(p("entry.json"), []byte(strings.Replace(lines[7], `"auth.login"`, `"auth.logout"`, 1)), 0o644)
	if out, code := runCLI(t, "verify", "inclusion", "--entry", p("entry.json"), "--checkpoint", p("new.ckpt"), "--proof", p("inclusion.json"), "--key", vkey); code != 1 || !strings.Contains(out, "NOT included") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
