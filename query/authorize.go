package query

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
)

// AuthError is the error Authorize returns: the HTTP status to answer
// with, and a message safe to show the caller.
type AuthError struct {
	Status  int
	Message string
}

func (e *AuthError) Error() string { return e.Message }

// HTTPStatus is the status to answer with (401, 403 or 429).
func (e *AuthError) HTTPStatus() int { return e.Status }

// Authorize authenticates r's bearer token with the service's keys, spends
// one request of the token's rate budget and checks that the token grants
// perm and names an org. It returns the org and the subject. Management
// APIs mounted beside the service (webhook endpoints, SIEM destinations)
// use it so that every route shares one notion of a caller. It is safe for
// concurrent use.
func (s *Service) Authorize(r *http.Request, perm string) (orgID, subject string, err error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", "", &AuthError{http.StatusUnauthorized, "send Authorization: Bearer <token>"}
	}
	c, err := s.auth.verify(tok)
	if err != nil {
		return "", "", &AuthError{http.StatusUnauthorized, "the bearer token was refused: " + err.Error()}
	}
	sum := sha256.Sum256([]byte(tok))
	if ok, _ := s.limit.allow(hex.EncodeToString(sum[:12]), s.cfg.Now()); !ok {
		return "", "", &AuthError{http.StatusTooManyRequests, "this token's request budget is spent; retry in a few seconds"}
	}
	if !c.Has(perm) {
		return "", "", &AuthError{http.StatusForbidden, "the token lacks the " + perm + " permission"}
	}
	if c.OrgID == "" {
		return "", "", &AuthError{http.StatusForbidden, "the token names no org"}
	}
	return c.OrgID, c.Subject, nil
}
