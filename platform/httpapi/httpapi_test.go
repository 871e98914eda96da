package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/schemas"
)

func problemOf(t *testing.T, rec *httptest.ResponseRecorder) auditapi.Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, body %s", ct, rec.Body)
	}
	var p auditapi.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != rec.Code || p.Title != auditapi.Title(p.Code()) || p.Title == "" {
		t.Fatalf("problem %+v for status %d", p, rec.Code)
	}
	return p
}

func TestRouterAnswersProblems(t *testing.T) {
	rt := httpapi.NewRouter()
	rt.HandleFunc(http.MethodGet, "/v1/x/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	rt.HandleFunc(http.MethodPatch, "/v1/x/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	for _, tc := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/v1/x/1", 204, "", ""},
		{"DELETE", "/v1/x/1", 405, auditapi.CodeMethodNotAllowed, "GET, HEAD, PATCH"},
		{"OPTIONS", "/v1/x/1", 405, auditapi.CodeMethodNotAllowed, "GET, HEAD, PATCH"},
		{"HEAD", "/v1/x/1", 204, "", ""},
		{"GET", "/v1/y", 404, auditapi.CodeNotFound, ""},
	} {
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d allow %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"))
		}
		if tc.code != "" && problemOf(t, rec).Code() != tc.code {
			t.Errorf("%s %s: %s", tc.method, tc.path, rec.Body)
		}
	}
}

func TestDecodeJSONNamesTheField(t *testing.T) {
	type inner struct {
		CAPEM string `json:"ca_pem"`
	}
	type body struct {
		URL     string   `json:"url"`
		Filters []string `json:"filters"`
		TLS     *inner   `json:"tls"`
	}
	for _, tc := range []struct {
		body, param string
		status      int
	}{
		{`{"url":"x"}`, "", 0},
		{`{"url":7}`, "url", 400},
		{`{"filters":"a"}`, "filters", 400},
		{`{"tls":{"ca_pem":1}}`, "tls.ca_pem", 400},
		{`{"colour":"red"}`, "colour", 400},
		{`{"url":`, "", 400},
		{`not json`, "", 400},
		{``, "", 400},
		{`{"url":"a"}{"url":"b"}`, "", 400},
		{`{"url":"` + strings.Repeat("a", 200) + `"}`, "", 413},
	} {
		rec := httptest.NewRecorder()
		var v body
		e := httpapi.DecodeJSON(rec, httptest.NewRequest("POST", "/", strings.NewReader(tc.body)), 128, &v)
		if tc.status == 0 {
			if e != nil {
				t.Errorf("%s: %v", tc.body, e)
			}
			continue
		}
		if e == nil || e.Status != tc.status || e.Param != tc.param {
			t.Errorf("%.40s: %+v, want %d naming %q", tc.body, e, tc.status, tc.param)
			continue
		}
		e.Write(rec)
		if p := problemOf(t, rec); p.Parameter != tc.param {
			t.Errorf("%.40s: problem %+v", tc.body, p)
		}
	}
}

func TestRecorderAnswersWhenTheRecordFails(t *testing.T) {
	var got []string
	rc := httpapi.Recorder{Emit: func(_ context.Context, ev schemas.Event) error {
		if ev.Action == "b.fail" {
			return errors.New("stream gone")
		}
		got = append(got, ev.Action+"/"+ev.Outcome)
		return nil
	}}
	applied := 0
	apply := func(context.Context) error { applied++; return nil }
	rec := httptest.NewRecorder()
	if !rc.Apply(rec, httptest.NewRequest("POST", "/", nil), apply, schemas.Event{Action: "a.one"}, schemas.Event{Action: "a.two"}) || rec.Code != 200 || applied != 1 {
		t.Fatalf("recorded: %d, applied %d", rec.Code, applied)
	}
	// A record that cannot be written: the change is not made, and the
	// record written before it is followed by a failure.
	rec = httptest.NewRecorder()
	if rc.Apply(rec, httptest.NewRequest("POST", "/", nil), apply, schemas.Event{Action: "b.ok"}, schemas.Event{Action: "b.fail"}) || applied != 1 {
		t.Fatalf("a failed record reported success or applied the change (%d)", applied)
	}
	if p := problemOf(t, rec); rec.Code != 503 || p.Code() != auditapi.CodeNotRecorded {
		t.Fatalf("failed record: %d %+v", rec.Code, p)
	}
	if strings.Join(got, ",") != "a.one/,a.two/,b.ok/,b.ok/failure" {
		t.Fatalf("emitted %v", got)
	}
}

type statusErr int

func (e statusErr) Error() string   { return "nope" }
func (e statusErr) HTTPStatus() int { return int(e) }

func TestAuth(t *testing.T) {
	key := []byte("httpapi-test-secret-0123456789abcdef")
	now := time.Now()
	a, err := httpapi.NewAuth(httpapi.AuthConfig{HMACSecret: key}, httpapi.RateLimit{PerSecond: 0.001, Burst: 2}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	req := func(tok string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	tok, _ := auditapi.Mint(key, auditapi.TokenSpec{OrgID: "org_a", Subject: "u", Permissions: []string{auditapi.PermRead}, TTL: time.Hour}, now)
	if org, sub, err := a.Authorize(req(tok), auditapi.PermRead); err != nil || org != "org_a" || sub != "u" {
		t.Fatalf("Authorize = %q %q %v", org, sub, err)
	}
	if _, _, err := a.Authorize(req(tok), auditapi.PermManage); httpapi.AuthFailure(err).Code != auditapi.CodeForbidden {
		t.Fatalf("missing permission: %v", err)
	}
	_, _, err = a.Authorize(req(tok), auditapi.PermRead)
	if e := httpapi.AuthFailure(err); e.Status != 429 || e.Code != auditapi.CodeRateLimited || e.RetryAfter <= 0 {
		t.Fatalf("spent budget: %+v", e)
	}
	if _, _, err := a.Authorize(req("x.y.z"), auditapi.PermRead); httpapi.AuthFailure(err).Status != 401 {
		t.Fatalf("bad token: %v", err)
	}
	for status, code := range map[int]string{401: auditapi.CodeUnauthorized, 403: auditapi.CodeForbidden, 429: auditapi.CodeRateLimited} {
		if e := httpapi.AuthFailure(statusErr(status)); e.Status != status || e.Code != code {
			t.Errorf("AuthFailure(%d) = %+v", status, e)
		}
	}
	if e := httpapi.AuthFailure(errors.New("plain")); e.Status != 401 {
		t.Errorf("plain error: %+v", e)
	}
}

func TestAuthRefusesLooseTimesAndSharesBudgetsByIdentity(t *testing.T) {
	key := []byte("httpapi-test-secret-0123456789abcdef")
	now := time.Now()
	a, err := httpapi.NewAuth(httpapi.AuthConfig{HMACSecret: key}, httpapi.RateLimit{PerSecond: 0.001, Burst: 3, UnauthenticatedPerSecond: 0.001, UnauthenticatedBurst: 5}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	req := func(tok, addr string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "u", "org_id": "org_a", "permissions": []string{auditapi.PermRead},
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	}
	// Times that are not numbers, and an iat in the future, are refused.
	for name, edit := range map[string]func(jwt.MapClaims){
		"exp as a string":   func(c jwt.MapClaims) { c["exp"] = fmt.Sprint(now.Add(time.Hour).Unix()) },
		"iat as a string":   func(c jwt.MapClaims) { c["iat"] = fmt.Sprint(now.Unix()) },
		"nbf as a string":   func(c jwt.MapClaims) { c["nbf"] = fmt.Sprint(now.Unix()) },
		"iat in the future": func(c jwt.MapClaims) { c["iat"] = now.Add(10 * time.Minute).Unix() },
	} {
		c := base()
		edit(c)
		if _, e := a.Authenticate(req(sign(c), "192.0.2.1:1")); e == nil || e.Status != 401 {
			t.Errorf("%s: accepted (%v)", name, e)
		}
	}
	// One identity, one budget: a second token for the same person and a
	// re-encoded signature spend from the same bucket.
	c1 := base()
	tok1 := sign(c1)
	c2 := base()
	c2["iat"] = now.Add(-time.Minute).Unix()
	tok2 := sign(c2)
	// Flip the unused low bits of the signature's last base64url character:
	// the same signature bytes, another token string.
	last := tok1[len(tok1)-1]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	idx := strings.IndexByte(alphabet, last)
	tok3 := tok1[:len(tok1)-1] + string(alphabet[idx^1])
	if tok3 == tok1 {
		t.Fatal("re-encoding did not change the token")
	}
	for i, tok := range []string{tok1, tok2, tok3} {
		if _, e := a.Authenticate(req(tok, "192.0.2.2:1")); e != nil {
			t.Fatalf("token %d: %v", i, e)
		}
	}
	for i, tok := range []string{tok1, tok2, tok3} {
		if _, e := a.Authenticate(req(tok, "192.0.2.2:1")); e == nil || e.Status != 429 {
			t.Fatalf("token %d after the identity's budget is spent: %v", i, e)
		}
	}
	// Refused requests spend their address's budget: after it, 429.
	for i := range 5 {
		if _, e := a.Authenticate(req("x.y.z", "198.51.100.7:4000")); e == nil || e.Status != 401 {
			t.Fatalf("bad token %d: %v", i, e)
		}
	}
	if _, e := a.Authenticate(req("x.y.z", "198.51.100.7:4001")); e == nil || e.Status != 429 || e.RetryAfter <= 0 {
		t.Fatalf("flood of bad tokens: %v", e)
	}
	// Another address is not affected.
	if _, e := a.Authenticate(req("", "198.51.100.8:4000")); e == nil || e.Status != 401 {
		t.Fatalf("other address: %v", e)
	}
}
