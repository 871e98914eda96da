package query

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/tlog/erasure"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// eraseRequest is the body of POST /v1/orgs/{org}/erasures.
type eraseRequest struct {
	// Subject is the actor or target id whose personal data is erased.
	Subject string `json:"subject"`
	// RequestReference names the data-protection request (optional);
	// it is recorded in the org's log, so it must not be personal data.
	RequestReference string `json:"request_reference"`
}

// maxReferenceLen bounds request_reference (a detail string).
const maxReferenceLen = 128

// eraseAnswer is the answer of POST /v1/orgs/{org}/erasures.
type eraseAnswer struct {
	OrgID    string `json:"org_id"`
	Subject  string `json:"subject"`
	RecordID string `json:"record_id"`
	erasure.Result
	ErasedAt time.Time `json:"erased_at"`
}

// eraseSubject erases one subject's personal data from the org's log: the
// stored plaintext of its personal fields becomes their commitments and
// its salt is deleted, so every proof stays valid. The token was verified
// with a purge key (route.purge), carries audit.erase and must name the
// org of the path and, in erase_subject, the subject. The erasure is recorded in the org's log first
// (audit.subject_erased, carrying the subject id and the request
// reference, never an erased value).
func (s *Service) eraseSubject(w http.ResponseWriter, r *http.Request, c *auditapi.Claims) {
	org, a, ok := s.operatorRoute(w, r, c, "erasure")
	if !ok {
		return
	}
	var req eraseRequest
	if e := httpapi.DecodeJSON(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		e.Write(w)
		return
	}
	if req.Subject == "" || schemas.CheckText(req.Subject, schemas.MaxActorIDLen) != nil {
		httpapi.BadField("subject", "an actor or target id is required: 1-256 bytes of UTF-8 without control characters").Write(w)
		return
	}
	if schemas.CheckText(req.RequestReference, maxReferenceLen) != nil {
		httpapi.BadField("request_reference", "at most 128 bytes without control characters").Write(w)
		return
	}
	// An erasure token is minted for one subject: it erases no one else.
	if c.EraseSubject == "" || c.EraseSubject != req.Subject {
		(&httpapi.Error{Status: http.StatusForbidden, Code: auditapi.CodeForbidden, Param: "subject",
			Detail: "the erasure token does not name this subject (its erase_subject claim)"}).Write(w)
		return
	}
	rec := producer.AuditSubjectErased(org, a, req.Subject, req.RequestReference)
	rec.ID = schemas.NewID()
	var res erasure.Result
	ok = s.record.Apply(w, r, func(ctx context.Context) error {
		var err error
		res, err = s.deps.Erase.Erase(ctx, org, req.Subject, rec.ID)
		switch {
		case errors.Is(err, erasure.ErrNotLogged):
			return httpapi.Errorf(http.StatusServiceUnavailable, auditapi.CodeUnavailable,
				"the erasure was recorded but its record did not reach the org's log in time, so nothing was erased; repeat the request")
		case errors.Is(err, eventstore.ErrEraseUnsupported):
			return httpapi.Errorf(http.StatusServiceUnavailable, auditapi.CodeUnavailable,
				"erasure is not supported on a ClickHouse cluster yet; nothing was erased")
		}
		return err
	}, rec)
	if !ok {
		return
	}
	s.log.Warn("subject erased", zap.String("org_id", org), zap.String("record_id", rec.ID),
		zap.Int("events", res.Events), zap.Int("kept", res.Kept), zap.Bool("salt_deleted", res.SaltDeleted))
	httpapi.WriteJSON(w, http.StatusOK, eraseAnswer{OrgID: org, Subject: req.Subject, RecordID: rec.ID, Result: res, ErasedAt: s.cfg.Now().UTC()})
}
