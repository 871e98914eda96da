package auditapi_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/takumo/audit/platform/auditapi"
)

var key = []byte("auditapi-test-secret-0123456789abcdef")

func TestMintChecks(t *testing.T) {
	ok := auditapi.TokenSpec{OrgID: "org_a", Subject: "u", Permissions: []string{auditapi.PermRead}, TTL: time.Hour}
	for _, tc := range []struct {
		name string
		edit func(*auditapi.TokenSpec)
		want string // "" for success
	}{
		{"valid", func(*auditapi.TokenSpec) {}, ""},
		{"operator without org", func(s *auditapi.TokenSpec) { s.OrgID, s.Permissions = "", []string{auditapi.PermOperator} }, ""},
		{"zero ttl", func(s *auditapi.TokenSpec) { s.TTL = 0 }, "lifetime must be positive"},
		{"negative ttl", func(s *auditapi.TokenSpec) { s.TTL = -time.Minute }, "lifetime must be positive"},
		{"no org", func(s *auditapi.TokenSpec) { s.OrgID = "" }, "org is required"},
		{"bad org", func(s *auditapi.TokenSpec) { s.OrgID = "org a" }, "must match"},
		{"unknown permission", func(s *auditapi.TokenSpec) { s.Permissions = []string{"audit.delete"} }, `unknown permission "audit.delete"`},
		{"no subject", func(s *auditapi.TokenSpec) { s.Subject = "" }, "subject is required"},
		{"erasure naming its subject", func(s *auditapi.TokenSpec) { s.Permissions, s.EraseSubject = []string{auditapi.PermErase}, "usr_42" }, ""},
		{"erasure naming no subject", func(s *auditapi.TokenSpec) { s.Permissions = []string{auditapi.PermErase} }, "names the subject it erases"},
		{"a subject to erase without audit.erase", func(s *auditapi.TokenSpec) { s.EraseSubject = "usr_42" }, "only a token with audit.erase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := ok
			tc.edit(&spec)
			tok, err := auditapi.Mint(key, spec, time.Now())
			if tc.want == "" {
				if err != nil || tok == "" {
					t.Fatalf("Mint = %q, %v", tok, err)
				}
				return
			}
			if err == nil || !errors.Is(err, auditapi.ErrInvalidSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Mint error = %v, want ErrInvalidSpec with %q", err, tc.want)
			}
		})
	}
}

func TestMintClaims(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: "org_a", Subject: "usr_1", Permissions: []string{auditapi.PermRead, auditapi.PermExport},
		TTL: 10 * time.Minute, Issuer: "iss", Audience: "aud"}, now)
	if err != nil {
		t.Fatal(err)
	}
	var c auditapi.Claims
	if _, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
		t.Fatal(err)
	}
	if c.OrgID != "org_a" || c.Subject != "usr_1" || !c.Has(auditapi.PermExport) || c.Has(auditapi.PermManage) ||
		!c.ExpiresAt.Time.Equal(now.Add(10*time.Minute)) || c.Issuer != "iss" || c.Audience[0] != "aud" {
		t.Fatalf("claims = %+v", c)
	}
}

func TestCodesHaveTitles(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range auditapi.Codes {
		if auditapi.Title(c) == "" || seen[c] {
			t.Errorf("code %q: title %q, duplicate %v", c, auditapi.Title(c), seen[c])
		}
		seen[c] = true
	}
}

func TestDecodeProblem(t *testing.T) {
	p := auditapi.DecodeProblem(400, []byte(`{"type":"urn:takumo-audit:problem:invalid-body","title":"Invalid request body","status":400,"detail":"url: must be https","parameter":"url"}`))
	if p.Code() != auditapi.CodeInvalidBody || p.Parameter != "url" || p.Status != 400 {
		t.Fatalf("problem = %+v", p)
	}
	p = auditapi.DecodeProblem(http.StatusBadGateway, []byte("<html>bad gateway</html>\n"))
	if p.Code() != "" || p.Status != 502 || p.Title != "Bad Gateway" || p.Detail != "<html>bad gateway</html>" {
		t.Fatalf("foreign body = %+v", p)
	}
	p = auditapi.DecodeProblem(404, []byte(`{"type":"about:blank","title":"Not Found","status":404}`))
	if p.Code() != "" || p.Status != 404 {
		t.Fatalf("foreign problem = %+v", p)
	}
}
