package query_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/query"
)

func TestAuthorizeForMountedAPIs(t *testing.T) {
	e := newEnv(t, query.Config{RatePerSecond: 1000, RateBurst: 1000})
	req := func(tok string) *http.Request {
		r, _ := http.NewRequest("GET", "/v1/webhooks/endpoints", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		return r
	}
	status := func(err error) int {
		var ae interface{ HTTPStatus() int }
		if !errors.As(err, &ae) {
			t.Fatalf("error %v carries no HTTP status", err)
		}
		return ae.HTTPStatus()
	}
	org, sub, err := e.svc.Authorize(req(token(t, "org_a", auditapi.PermManage)), auditapi.PermManage)
	if err != nil || org != "org_a" || sub != "usr_admin" {
		t.Fatalf("Authorize = %q %q %v", org, sub, err)
	}
	if _, _, err := e.svc.Authorize(req(""), auditapi.PermManage); status(err) != 401 {
		t.Fatalf("no token: %v", err)
	}
	expired, _ := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: "org_a", Subject: "x", Permissions: []string{auditapi.PermManage}, TTL: time.Second}, time.Now().Add(-time.Hour))
	if _, _, err := e.svc.Authorize(req(expired), auditapi.PermManage); status(err) != 401 {
		t.Fatalf("expired token: %v", err)
	}
	if _, _, err := e.svc.Authorize(req(token(t, "org_a", auditapi.PermRead)), auditapi.PermManage); status(err) != 403 {
		t.Fatalf("missing permission: %v", err)
	}
	if _, _, err := e.svc.Authorize(req(token(t, "", auditapi.PermOperator, auditapi.PermManage)), auditapi.PermManage); status(err) != 403 {
		t.Fatalf("token without an org: %v", err)
	}
}
