package endpoints

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/kvcollection"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// Create stores a new enabled endpoint with a fresh secret, and returns it
// with the secret (shown to the user once).
func (r *Registry) Create(ctx context.Context, org string, spec Spec) (Endpoint, signing.Secret, error) {
	if err := schemas.CheckOrgID(org); err != nil {
		return Endpoint{}, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := validate(&spec, r.cfg.CheckURL); err != nil {
		return Endpoint{}, nil, err
	}
	if len(r.List(org)) >= MaxEndpointsPerOrg {
		return Endpoint{}, nil, ErrTooMany
	}
	secret, err := signing.NewSecret()
	if err != nil {
		return Endpoint{}, nil, err
	}
	now := r.cfg.Now().UTC()
	if spec.ID == "" {
		spec.ID = "ep_" + schemas.NewID()
	}
	ep := Endpoint{
		Fields: destination.Fields{ID: spec.ID, OrgID: org, Filters: spec.Filters, CreatedAt: now, UpdatedAt: now},
		URL:    spec.URL, Description: spec.Description, Enabled: true,
	}
	ep.Secrets = []SealedSecret{{Sealed: seal(r.box, org, ep.ID, secret), CreatedAt: now}}
	if _, err := r.c.Create(ctx, ep.Key(), record{ep: ep}); err != nil {
		return Endpoint{}, nil, fmt.Errorf("endpoints: create: %w", err)
	}
	return clone(ep), secret, nil
}

// Check validates spec as Create would, without storing anything, and
// returns it normalized (filters sorted and deduplicated).
func (r *Registry) Check(spec Spec) (Spec, error) {
	spec.Filters = slices.Clone(spec.Filters)
	if err := validate(&spec, r.cfg.CheckURL); err != nil {
		return Spec{}, err
	}
	return spec, nil
}

// Update applies change to the stored endpoint under compare-and-set,
// retrying on a concurrent write, and returns the result. change may
// return an error to abort; it may be called more than once.
func (r *Registry) Update(ctx context.Context, org, id string, change func(*Endpoint) error) (Endpoint, error) {
	e, err := r.c.Update(ctx, destination.Key(org, id), func(rec *record) error {
		if err := change(&rec.ep); err != nil {
			return err
		}
		rec.ep.UpdatedAt = r.cfg.Now().UTC()
		return nil
	})
	if errors.Is(err, kvcollection.ErrNotFound) {
		return Endpoint{}, ErrNotFound
	}
	if err != nil {
		return Endpoint{}, err
	}
	return clone(e.Value.ep), nil
}

// Modify applies c.
func (r *Registry) Modify(ctx context.Context, org, id string, c Change) (Endpoint, error) {
	return r.Update(ctx, org, id, func(ep *Endpoint) error {
		s := Spec{URL: ep.URL, Description: ep.Description, Filters: ep.Filters}
		if c.URL != nil {
			s.URL = *c.URL
		}
		if c.Description != nil {
			s.Description = *c.Description
		}
		if c.Filters != nil {
			s.Filters = slices.Clone(*c.Filters)
		}
		if err := validate(&s, r.cfg.CheckURL); err != nil {
			return err
		}
		ep.URL, ep.Description, ep.Filters = s.URL, s.Description, s.Filters
		if c.Enabled != nil && *c.Enabled != ep.Enabled {
			ep.Enabled = *c.Enabled
			if ep.Enabled {
				ep.DisabledReason, ep.DisabledAt, ep.FailingSince = "", nil, nil
			} else {
				now := r.cfg.Now().UTC()
				ep.DisabledReason, ep.DisabledAt = c.Reason, &now
			}
		}
		return nil
	})
}

// Disable turns the endpoint off with reason.
func (r *Registry) Disable(ctx context.Context, org, id, reason string) (Endpoint, error) {
	return r.Update(ctx, org, id, func(ep *Endpoint) error {
		if !ep.Enabled {
			return ErrAlreadyDisabled
		}
		now := r.cfg.Now().UTC()
		ep.Enabled, ep.DisabledReason, ep.DisabledAt = false, reason, &now
		return nil
	})
}

// Rotate makes a new current secret. Every older secret — the current
// one and those still in force from earlier rotations — keeps signing for
// overlap at most: a secret whose own expiry comes sooner keeps it, and an
// overlap of 0 (an emergency rotation) stops every older secret at once.
// It returns the new secret.
func (r *Registry) Rotate(ctx context.Context, org, id string, overlap time.Duration) (Endpoint, signing.Secret, error) {
	secret, err := signing.NewSecret()
	if err != nil {
		return Endpoint{}, nil, err
	}
	ep, err := r.Update(ctx, org, id, func(ep *Endpoint) error {
		now := r.cfg.Now().UTC()
		limit := now.Add(overlap)
		kept := []SealedSecret{{Sealed: seal(r.box, org, id, secret), CreatedAt: now}}
		for _, s := range ep.Secrets {
			if s.ExpiresAt == nil || s.ExpiresAt.After(limit) {
				exp := limit
				s.ExpiresAt = &exp
			}
			if s.ExpiresAt.After(now) && len(kept) <= maxPrevious {
				kept = append(kept, s)
			}
		}
		ep.Secrets = kept
		return nil
	})
	if err != nil {
		return Endpoint{}, nil, err
	}
	return ep, secret, nil
}

// Delete removes the endpoint.
func (r *Registry) Delete(ctx context.Context, org, id string) error {
	err := r.c.Delete(ctx, destination.Key(org, id))
	if errors.Is(err, kvcollection.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("endpoints: delete: %w", err)
	}
	return nil
}

// NoteResult records the outcome of a delivery attempt for the failure
// run: a success ends it, a failure starts it if none is running. It
// writes only on those transitions and returns the run's start (zero after
// a success).
func (r *Registry) NoteResult(ctx context.Context, org, id string, ok bool) (time.Time, error) {
	cur, found := r.Get(org, id)
	if !found {
		return time.Time{}, ErrNotFound
	}
	if ok && cur.FailingSince == nil {
		return time.Time{}, nil
	}
	if !ok && cur.FailingSince != nil {
		return *cur.FailingSince, nil
	}
	ep, err := r.Update(ctx, org, id, func(ep *Endpoint) error {
		if ok {
			ep.FailingSince = nil
		} else if ep.FailingSince == nil {
			now := r.cfg.Now().UTC()
			ep.FailingSince = &now
		}
		return nil
	})
	if err != nil || ep.FailingSince == nil {
		return time.Time{}, err
	}
	return *ep.FailingSince, nil
}
