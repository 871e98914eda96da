package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/tlog/erasure"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/logwriter/sealtest"
	"github.com/takumo/audit/platform/tlog/treestore"
)

// logWriter runs the transparency log's writer on js, sealing for an
// ingest loop that stores what the stream holds (logwriter/sealtest), and
// returns the eraser over the store.
func logWriter(t testing.TB, js jetstream.JetStream, db string, store *eventstore.Store) *erasure.Eraser {
	t.Helper()
	trees, err := treestore.New(embedded.New(chdbtest.Session(t), embedded.Options{}), treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := sealtest.Keys(t, "audit.test")
	w, err := logwriter.New(js, trees, signer, logwriter.Config{Deployment: "audit.test", Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	s := sealtest.Start(t, js, store, w)
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return erasure.New(store, trees, erasure.Config{Wait: 20 * time.Second})
}

// auditctl erase calls the erasure route with an operator token and
// prints its answer; a user token is refused, and so is a command line
// without the subject.
func TestErase(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := newServerWith(t, serverOpts{operatorKeys: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})})
	now := time.Now().UTC()
	// Stored without passing through the log: the erasure keeps their
	// plaintext and says so.
	s.insert(event("org_acme", "01JD00000000000000000000E1", now, "auth.login", "usr_erin", "Erin"),
		event("org_acme", "01JD00000000000000000000E2", now, "auth.login", "usr_ada", "Ada"))
	op, err := auditapi.Mint(priv, auditapi.TokenSpec{OrgID: "org_acme", Subject: "dpo", Permissions: []string{auditapi.PermErase}, TTL: time.Hour, EraseSubject: "usr_erin"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	code, out, errs := run(ctx, s, op, nil, "erase", "--org", "org_acme", "--subject", "usr_erin", "--reference", "DSR-9")
	if code != 0 || !strings.Contains(out, `"events_kept": 1`) || !strings.Contains(out, `"record_id": "`) || !strings.Contains(errs, "repeat the erasure") {
		t.Fatalf("erase = %d\n%s\n%s", code, out, errs)
	}
	user, err := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: "org_acme", Subject: "usr_ops", Permissions: []string{auditapi.PermErase, auditapi.PermManage},
		TTL: time.Hour, EraseSubject: "usr_erin"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs = run(ctx, s, user, nil, "erase", "--org", "org_acme", "--subject", "usr_erin")
	if code != 1 || !strings.Contains(errs, "refused the token") {
		t.Fatalf("erase with a user token = %d %s", code, errs)
	}
	if code, _, errs := run(ctx, s, op, nil, "erase", "--org", "org_acme"); code != 2 || !strings.Contains(errs, "--subject") {
		t.Fatalf("erase without --subject = %d %s", code, errs)
	}
}
