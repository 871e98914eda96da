package query_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/tlog/erasure"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
)

// settingsAnswer is the part of the settings body these tests read.
type settingsAnswer struct {
	Plan               string                       `json:"plan"`
	RetentionDays      int                          `json:"retention_days"`
	LastRetentionCut   *orgsettings.RetentionRecord `json:"last_retention_cut"`
	LastRetentionPurge *orgsettings.RetentionRecord `json:"last_retention_purge"`
}

func (e *env) putPlan(org, plan string) settingsAnswer {
	e.t.Helper()
	return putPlanOn(e, e.srv.URL, org, plan)
}

func putPlanOn(e *env, base, org, plan string) settingsAnswer {
	e.t.Helper()
	saved := e.srv.URL
	e.srv.URL = base
	defer func() { e.srv.URL = saved }()
	r := e.do("PUT", "/v1/settings", token(e.t, "", auditapi.PermOperator), fmt.Sprintf(`{"org_id":%q,"plan":%q}`, org, plan))
	if r.status != 200 {
		e.t.Fatalf("PUT plan %s for %s: %d %s", plan, org, r.status, r.body)
	}
	var a settingsAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// aged inserts n events of org received age ago (id prefix p) with a
// year's retention.
func (e *env) aged(org, p string, n int, age time.Duration) {
	e.t.Helper()
	at := time.Now().UTC().Add(-age).Truncate(time.Millisecond)
	var evs []schemas.Event
	for i := range n {
		evs = append(evs, mkEvent(org, fmt.Sprintf("%s%d", p, i), at.Add(time.Duration(i)*time.Second), "member.invited", "usr_1"))
	}
	e.insert(evs...)
}

// serviceOver serves a second query service over the env's settings and
// NATS, with store and rec, as another instance would.
func serviceOver(e *env, store *eventstore.Store, rec query.Recorder) *httptest.Server {
	e.t.Helper()
	svc, err := query.New(query.Config{Auth: authOf(secret), RatePerSecond: 1000, RateBurst: 1000},
		query.Deps{Events: store, Retention: store, Purge: store, Settings: e.settings, Recorder: rec})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	e.t.Cleanup(srv.Close)
	return srv
}

// A shorter retention keeps the events past it for the grace period and
// says until when; once the grace period has passed they are gone. Time
// is simulated as in the store's own contract suite: a second store on
// the same database whose clock is 31 days behind makes the same cut
// with a grace period that has already ended.
func TestRetentionCutGracePeriod(t *testing.T) {
	e := newEnv(t, query.Config{})
	for _, org := range []string{"org_r", "org_s"} {
		e.putPlan(org, "enterprise")
		e.aged(org, "old_"+org+"_", 3, 40*24*time.Hour)
		e.aged(org, "new_"+org+"_", 2, time.Hour)
	}
	before := time.Now()
	a := e.putPlan("org_r", "developer")
	cut := a.LastRetentionCut
	if a.RetentionDays != 30 || cut == nil || cut.FromDays != 365 || cut.ToDays != 30 || cut.RecordID == "" || cut.HeldUntil == nil {
		t.Fatalf("answer to the cut: %+v %+v", a, cut)
	}
	if d := cut.HeldUntil.Sub(before); d < eventstore.DefaultRetentionGrace-time.Minute || d > eventstore.DefaultRetentionGrace+time.Minute {
		t.Fatalf("held until %v, %v after the request; want the 30-day grace period", cut.HeldUntil, d)
	}
	// The events past the new retention are still stored and readable.
	if got := e.list(reader(t, "org_r"), url.Values{}); len(got.Data) != 5 {
		t.Fatalf("during the grace period: %d events, want 5", len(got.Data))
	}
	if n, err := e.store.Count(context.Background(), "org_r"); err != nil || n != 5 {
		t.Fatalf("stored during the grace period: %d %v", n, err)
	}
	// GET /v1/settings names the cut and its record.
	var g settingsAnswer
	r := e.get("/v1/settings", reader(t, "org_r"))
	if err := json.Unmarshal(r.body, &g); err != nil || g.LastRetentionCut == nil || g.LastRetentionCut.RecordID != cut.RecordID {
		t.Fatalf("GET settings after the cut: %d %s", r.status, r.body)
	}
	// The record is in the org's log, written before the change.
	rec := findRecorded(t, e, "org_r", cut.RecordID)
	if rec.Action != schemas.ActionAuditRetentionReduced || rec.Details["to_days"] != float64(30) || rec.Details["held_until"] != cut.HeldUntil.UTC().Format(time.RFC3339) {
		t.Fatalf("record of the cut: %+v", rec)
	}

	// The same cut 31 days ago: the grace period is over, the events past
	// the retention are gone.
	past, err := eventstore.New(embedded.New(chdbtest.Session(t), embedded.Options{}), eventstore.Config{Database: e.db,
		Now: func() time.Time { return time.Now().Add(-31 * 24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	prod := openProducer(t, e)
	srv := serviceOver(e, past, prod)
	putPlanOn(e, srv.URL, "org_s", "developer")
	if got := e.list(reader(t, "org_s"), url.Values{}); len(got.Data) != 2 {
		t.Fatalf("after the grace period: %d events, want 2", len(got.Data))
	}
	if err := e.store.Optimize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, err := e.store.CountStored(context.Background(), "org_s"); err != nil || n != 2 {
		t.Fatalf("stored after the grace period: %d %v", n, err)
	}
	if n, err := e.store.Count(context.Background(), "org_r"); err != nil || n != 5 {
		t.Fatalf("the other org's grace period: %d %v", n, err)
	}
}

// A Free org cannot read its log, but it can read the record of a cut:
// GET /v1/settings names it and GET /v1/events/{id} shows it.
func TestRetentionCutRecordReadableOnFree(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	e.putPlan("org_a", "enterprise")
	cut := e.putPlan("org_a", "free").LastRetentionCut
	if cut == nil || cut.ToDays != 7 {
		t.Fatalf("cut %+v", cut)
	}
	// The ingestor's part: store the recorded event.
	rec := findRecorded(t, e, "org_a", cut.RecordID)
	received := time.Now().UTC()
	rec.ReceivedAt = &received
	e.insert(rec)

	free := token(t, "org_a", auditapi.PermRead)
	r := e.get("/v1/events/"+cut.RecordID, free)
	var got schemas.Event
	if r.status != 200 || json.Unmarshal(r.body, &got) != nil || got.Action != schemas.ActionAuditRetentionReduced || got.Details["from_days"] != float64(365) {
		t.Fatalf("the record on Free: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/v1/events/ev_a0", "/v1/events"} {
		if r := e.get(path, free); r.status != 403 || r.problem(t).Code() != auditapi.CodePlan {
			t.Fatalf("%s on Free: %d %s", path, r.status, r.body)
		}
	}
	var g settingsAnswer
	r = e.get("/v1/settings", free)
	if err := json.Unmarshal(r.body, &g); err != nil || g.LastRetentionCut == nil || g.LastRetentionCut.RecordID != cut.RecordID {
		t.Fatalf("settings on Free: %d %s", r.status, r.body)
	}
	// Another org cannot read it.
	if r := e.get("/v1/events/"+cut.RecordID, reader(t, "org_b")); r.status != 404 {
		t.Fatalf("another org reads the record: %d", r.status)
	}
}

// Record first: when the record of a settings change, a purge or an
// erasure cannot be written, it is not made. (And an erasure token erases
// only the subject it names.)
func TestSettingsChangeNotRecordedNotMade(t *testing.T) {
	e := newEnv(t, query.Config{})
	e.putPlan("org_n", "enterprise")
	e.aged("org_n", "old_", 2, 40*24*time.Hour)
	closed := closedProducer(t, e)
	srv := serviceOver(e, e.store, closed)
	saved := e.srv.URL
	e.srv.URL = srv.URL
	r := e.do("PUT", "/v1/settings", token(t, "", auditapi.PermOperator), `{"org_id":"org_n","plan":"free"}`)
	e.srv.URL = saved
	if r.status != 503 || r.problem(t).Code() != auditapi.CodeNotRecorded {
		t.Fatalf("unrecorded cut: %d %s", r.status, r.body)
	}
	if st := e.settings.Get("org_n"); st.Plan != orgsettings.Enterprise || st.LastRetentionCut != nil {
		t.Fatalf("settings changed anyway: %+v", st)
	}
	if days, err := e.store.RetentionDays(context.Background(), "org_n"); err != nil || !slices.Equal(days, []int{365}) {
		t.Fatalf("stored retention changed anyway: %v %v", days, err)
	}

	// The operator acts too: a purge and an erasure whose records cannot
	// be written delete and erase nothing.
	e.putPlan("org_n", "developer") // a cut, held for the grace period
	pubPEM, priv := purgeKey(t)
	svc, err := query.New(query.Config{Auth: authOf(secret), PurgeKeysPEM: pubPEM, RatePerSecond: 1000, RateBurst: 1000},
		query.Deps{Events: e.store, Retention: e.store, Purge: e.store, Erase: erasure.New(e.store, e.trees, erasure.Config{}),
			Settings: e.settings, Recorder: closed})
	if err != nil {
		t.Fatal(err)
	}
	down := httptest.NewServer(svc.Handler())
	t.Cleanup(down.Close)
	e.srv.URL = down.URL
	for path, perm := range map[string]string{"/v1/orgs/org_n/retention/purge": auditapi.PermPurge, "/v1/orgs/org_n/erasures": auditapi.PermErase} {
		spec := auditapi.TokenSpec{OrgID: "org_n", Subject: "ops_oncall", Permissions: []string{perm}, TTL: time.Hour}
		if perm == auditapi.PermErase {
			spec.EraseSubject = "usr_1"
		}
		tok, err := auditapi.Mint(priv, spec, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if r := e.do("POST", path, tok, `{"subject":"usr_1"}`); r.status != 503 || r.problem(t).Code() != auditapi.CodeNotRecorded {
			t.Errorf("unrecorded %s: %d %s", path, r.status, r.body)
		}
	}
	// An erasure token erases the one subject it names: one naming none,
	// or another, is refused before anything is recorded.
	unbound, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"org_id": "org_n", "sub": "ops_oncall", "permissions": []string{auditapi.PermErase},
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	other, err := auditapi.Mint(priv, auditapi.TokenSpec{OrgID: "org_n", Subject: "ops_oncall", Permissions: []string{auditapi.PermErase}, TTL: time.Hour, EraseSubject: "usr_2"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"no subject named": unbound, "another subject": other} {
		if r := e.do("POST", "/v1/orgs/org_n/erasures", tok, `{"subject":"usr_1"}`); r.status != 403 || r.problem(t).Parameter != "subject" {
			t.Errorf("erasure token, %s: %d %s", name, r.status, r.body)
		}
	}
	e.srv.URL = saved
	if n, err := e.store.Count(context.Background(), "org_n"); err != nil || n != 2 {
		t.Fatalf("events after an unrecorded purge: %d %v", n, err)
	}
	if ev, err := e.store.Get(context.Background(), "org_n", "old_0"); err != nil || ev.Actor.Email != "ada@example.com" {
		t.Fatalf("event after an unrecorded erasure: %+v %v", ev.Actor, err)
	}
}

// Purging needs a token signed with the purge key: user tokens are
// refused whatever they claim, and a purge is recorded before it is made.
func TestRetentionPurge(t *testing.T) {
	pubPEM, priv := purgeKey(t)
	e := newEnv(t, query.Config{PurgeKeysPEM: pubPEM})
	e.putPlan("org_p", "enterprise")
	e.aged("org_p", "old_", 3, 40*24*time.Hour)
	e.aged("org_p", "new_", 2, time.Hour)
	e.putPlan("org_p", "developer")
	purgeTokTTL := func(ttl time.Duration, org string, perms ...string) string {
		tok, err := auditapi.Mint(priv, auditapi.TokenSpec{OrgID: org, Subject: "ops_oncall", Permissions: perms, TTL: ttl}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	purgeTok := func(org string, perms ...string) string { return purgeTokTTL(time.Hour, org, perms...) }
	noIat, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"org_id": "org_p", "sub": "ops_oncall",
		"permissions": []string{auditapi.PermPurge}, "exp": time.Now().Add(time.Minute).Unix()}).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	const path = "/v1/orgs/org_p/retention/purge"
	for name, tc := range map[string]struct {
		tok    string
		status int
	}{
		"user key claiming audit.purge":         {token(t, "org_p", auditapi.PermPurge), 401},
		"user key, operator":                    {token(t, "", auditapi.PermOperator), 401},
		"user key, operator with org and purge": {token(t, "org_p", auditapi.PermOperator, auditapi.PermPurge, auditapi.PermManage), 401},
		"purge key, another org":                {purgeTok("org_q", auditapi.PermPurge), 403},
		"purge key, no purge permission":        {purgeTok("org_p", auditapi.PermRead), 403},
		"purge key, a token for a year":         {purgeTokTTL(365*24*time.Hour, "org_p", auditapi.PermPurge), 401},
		"purge key, a token without iat":        {noIat, 401},
		"no token":                              {"", 401},
	} {
		if r := e.do("POST", path, tc.tok, ""); r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", name, r.status, r.body, tc.status)
		}
	}
	if n, err := e.store.Count(context.Background(), "org_p"); err != nil || n != 5 {
		t.Fatalf("refused purges deleted events: %d %v", n, err)
	}
	r := e.do("POST", path, purgeTok("org_p", auditapi.PermPurge), "")
	var ans struct {
		RecordID      string `json:"record_id"`
		RetentionDays int    `json:"retention_days"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &ans) != nil || ans.RecordID == "" || ans.RetentionDays != 30 {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	if got := e.list(reader(t, "org_p"), url.Values{}); len(got.Data) != 2 {
		t.Fatalf("after the purge: %d events, want 2", len(got.Data))
	}
	rec := findRecorded(t, e, "org_p", ans.RecordID)
	if rec.Action != schemas.ActionAuditRetentionPurged || rec.Actor.ID != "ops_oncall" || rec.Actor.Type != schemas.ActorSvc || rec.Details["retention_days"] != float64(30) {
		t.Fatalf("record of the purge: %+v", rec)
	}
	if st := e.settings.Get("org_p"); st.LastRetentionPurge == nil || st.LastRetentionPurge.RecordID != ans.RecordID {
		t.Fatalf("settings after the purge: %+v", st)
	}

	// Without purge keys the route refuses every token.
	plain := newEnv(t, query.Config{})
	if r := plain.do("POST", path, purgeTok("org_p", auditapi.PermPurge), ""); r.status != 403 {
		t.Fatalf("purge without purge keys: %d %s", r.status, r.body)
	}
	// A purge key may not also verify user tokens.
	_, err = query.New(query.Config{Auth: authPEM(pubPEM), PurgeKeysPEM: pubPEM},
		query.Deps{Events: e.store, Settings: e.settings, Recorder: closedProducer(t, e)})
	if err == nil {
		t.Fatal("New accepted a purge key that also verifies user tokens")
	}
}

// findRecorded waits for the service's audit event id of org in the stream.
func findRecorded(t *testing.T, e *env, org, id string) schemas.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ev := range e.recorded(org) {
			if ev.ID == id {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recorded event %s of %s", id, org)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func authOf(secret []byte) httpapi.AuthConfig { return httpapi.AuthConfig{HMACSecret: secret} }

func authPEM(keys []byte) httpapi.AuthConfig { return httpapi.AuthConfig{PublicKeysPEM: keys} }

// openProducer returns a producer on e's bus, closed when the test ends.
func openProducer(t *testing.T, e *env) *producer.Producer {
	t.Helper()
	p, err := producer.New(e.js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func closedProducer(t *testing.T, e *env) *producer.Producer {
	t.Helper()
	p := openProducer(t, e)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// heldHook is the store as a RetentionSetter whose HeldUntil — asked once
// a cut's old settings are read, before anything is recorded or stored —
// first runs another request's change.
type heldHook struct {
	*eventstore.Store
	meanwhile func()
}

func (h heldHook) HeldUntil() time.Time { h.meanwhile(); return h.Store.HeldUntil() }

// purgeHook is the store as a Purger that runs another request's change
// while the purge runs.
type purgeHook struct {
	*eventstore.Store
	meanwhile func()
}

func (h purgeHook) Purge(ctx context.Context, org string) error {
	h.meanwhile()
	return h.Store.Purge(ctx, org)
}

// plainPut is a PUT /v1/settings from another goroutine than the test's:
// it returns the status, 0 if the request could not be made.
func plainPut(base, tok, body string) int {
	req, err := http.NewRequest("PUT", base+"/v1/settings", strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// Two settings changes at once: the one whose old settings were read
// before the other was stored is refused (409), nothing of it is stored
// and its records are followed by failures — it never overwrites the
// other unrecorded (here, the plan the operator set).
func TestConcurrentSettingsChangesDoNotOverwriteEachOther(t *testing.T) {
	e := newEnv(t, query.Config{})
	e.putPlan("org_c", "enterprise")
	admin := token(t, "org_c", auditapi.PermManage)
	if r := e.do("PUT", "/v1/settings", admin, `{"custom_retention_days":3650}`); r.status != 200 {
		t.Fatalf("custom retention: %d %s", r.status, r.body)
	}
	prod := openProducer(t, e)
	operator, main := 0, e.srv.URL
	svc, err := query.New(query.Config{Auth: authOf(secret), RatePerSecond: 1000, RateBurst: 1000},
		query.Deps{Events: e.store, Retention: heldHook{e.store, func() {
			operator = plainPut(main, token(t, "", auditapi.PermOperator), `{"org_id":"org_c","plan":"pro"}`)
		}}, Settings: e.settings, Recorder: prod})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	saved := e.srv.URL
	e.srv.URL = srv.URL
	r := e.do("PUT", "/v1/settings", admin, `{"custom_retention_days":400}`)
	e.srv.URL = saved
	if operator != 200 {
		t.Fatalf("the operator's change: %d", operator)
	}
	if r.status != 409 || r.problem(t).Code() != auditapi.CodeConflict {
		t.Fatalf("the stale change: %d %s", r.status, r.body)
	}
	if st := e.settings.Get("org_c"); st.Plan != orgsettings.Pro || st.RetentionDays() != 90 {
		t.Fatalf("settings after both: %+v, want the operator's pro plan", st)
	}
	// The stale change's records are each followed by a failure.
	var tried, failed int
	for _, ev := range e.recorded("org_c") {
		if ev.Action == schemas.ActionAuditRetentionReduced && ev.Details["to_days"] == float64(400) {
			if ev.Outcome == schemas.OutcomeFailure {
				failed++
			} else {
				tried++
			}
		}
	}
	if tried != 1 || failed != 1 {
		t.Fatalf("records of the refused cut: %d, failures %d", tried, failed)
	}
}

// A purge stores only the pointer to its record in the settings: a plan
// changed while it ran is kept, not set back to the plan read before it.
func TestPurgeKeepsSettingsChangedMeanwhile(t *testing.T) {
	pubPEM, priv := purgeKey(t)
	e := newEnv(t, query.Config{})
	e.putPlan("org_m", "enterprise")
	cut := e.putPlan("org_m", "developer").LastRetentionCut
	prod := openProducer(t, e)
	operator, main := 0, e.srv.URL
	svc, err := query.New(query.Config{Auth: authOf(secret), PurgeKeysPEM: pubPEM, RatePerSecond: 1000, RateBurst: 1000},
		query.Deps{Events: e.store, Retention: e.store, Purge: purgeHook{e.store, func() {
			operator = plainPut(main, token(t, "", auditapi.PermOperator), `{"org_id":"org_m","plan":"pro"}`)
		}}, Settings: e.settings, Recorder: prod})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	tok, err := auditapi.Mint(priv, auditapi.TokenSpec{OrgID: "org_m", Subject: "ops_oncall", Permissions: []string{auditapi.PermPurge}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	saved := e.srv.URL
	e.srv.URL = srv.URL
	r := e.do("POST", "/v1/orgs/org_m/retention/purge", tok, "")
	e.srv.URL = saved
	if r.status != 200 || operator != 200 {
		t.Fatalf("purge %d %s; the operator's change meanwhile %d", r.status, r.body, operator)
	}
	st := e.settings.Get("org_m")
	if st.Plan != orgsettings.Pro || st.LastRetentionPurge == nil || st.LastRetentionCut == nil || st.LastRetentionCut.RecordID != cut.RecordID {
		t.Fatalf("settings after the purge: %+v, want the pro plan, the purge and the cut", st)
	}
}

// purgeKey returns a purge key pair: the PEM public key and the private
// key.
func purgeKey(t *testing.T) ([]byte, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), priv
}

// setHook is the store as a RetentionSetter whose first SetRetention lets
// another request run first, for up to a second.
type setHook struct {
	*eventstore.Store
	started   *atomic.Bool
	meanwhile func()
}

func (h setHook) SetRetention(ctx context.Context, org string, days int) error {
	if h.started.CompareAndSwap(false, true) {
		h.meanwhile()
	}
	return h.Store.SetRetention(ctx, org, days)
}

// Two settings changes of one org on one instance are made one after the
// other, retention re-applied included: a later change cannot be
// overtaken by an earlier one's re-application, which would leave the
// stored events with a shorter retention than the settings and the last
// record say.
func TestSettingsChangesApplyInOrder(t *testing.T) {
	e := newEnv(t, query.Config{})
	e.putPlan("org_o", "enterprise")
	e.aged("org_o", "old_", 2, 40*24*time.Hour)
	admin := token(t, "org_o", auditapi.PermManage)
	if r := e.do("PUT", "/v1/settings", admin, `{"custom_retention_days":3650}`); r.status != 200 {
		t.Fatalf("custom retention: %d %s", r.status, r.body)
	}
	prod := openProducer(t, e)
	var base string
	var overtook atomic.Bool
	second := make(chan int, 1)
	svc, err := query.New(query.Config{Auth: authOf(secret), RatePerSecond: 1000, RateBurst: 1000},
		query.Deps{Events: e.store, Retention: setHook{e.store, &atomic.Bool{}, func() {
			go func() { second <- plainPut(base, admin, `{"custom_retention_days":3650}`) }()
			select {
			case status := <-second:
				overtook.Store(true)
				second <- status
			case <-time.After(time.Second):
			}
		}}, Settings: e.settings, Recorder: prod})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	base = srv.URL
	saved := e.srv.URL
	e.srv.URL = srv.URL
	r := e.do("PUT", "/v1/settings", admin, `{"custom_retention_days":400}`)
	e.srv.URL = saved
	if r.status != 200 {
		t.Fatalf("the cut: %d %s", r.status, r.body)
	}
	if status := <-second; status != 200 {
		t.Fatalf("the change back: %d", status)
	}
	days, err := e.store.RetentionDays(context.Background(), "org_o")
	if st := e.settings.Get("org_o"); err != nil || st.RetentionDays() != 3650 || !slices.Equal(days, []int{3650}) {
		t.Fatalf("settings say %d days, stored events %v (%v); the change back made during the cut: %t", st.RetentionDays(), days, err, overtook.Load())
	}
}
