// Package erasure erases one subject's personal data from one org's log
// without breaking a proof (crypto-shredding): the stored plaintext of the
// subject's personal fields becomes the commitments the log's leaves
// already hold, and the subject's salt is deleted, so the commitments can
// no longer be tested against any value. Every leaf, checkpoint,
// inclusion and consistency proof stays valid.
//
// The caller records the erasure first (an audit.subject_erased event in
// the org's log, the route's record-first rule) and passes that record's
// id: Erase waits until the log writer has logged it, which fixes the cut
// in stream order — the writer stops caching the subject's salt there —
// and rewrites only the events whose stored leaf their fields, committed
// under the salt being deleted, reproduce.
package erasure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/schemas"
)

// Events is the event store the erasure rewrites (*eventstore.Store).
type Events interface {
	EraseSubject(ctx context.Context, orgID, subject string, erase eventstore.EraseFunc) (eventstore.Erased, error)
	Get(ctx context.Context, orgID, id string) (schemas.Event, error)
}

// Tree is the log's store (*treestore.Store).
type Tree interface {
	Salts(ctx context.Context, keys []treestore.Key) (map[treestore.Key][]byte, error)
	DeleteSalt(ctx context.Context, org, subject string) error
	LeafByEvent(ctx context.Context, org, eventID string) (treestore.Leaf, error)
	LeavesByEvent(ctx context.Context, org string, ids []string) (map[string]treestore.Leaf, error)
}

var (
	_ Events = (*eventstore.Store)(nil)
	_ Tree   = (*treestore.Store)(nil)
)

// Config tunes an Eraser.
type Config struct {
	// Wait bounds how long Erase waits for the log writer to log the
	// erasure's record, and then for the ingestor to store it: 60s.
	Wait time.Duration
	// Poll is the interval of those waits: 200ms.
	Poll time.Duration
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
}

// ErrNotLogged is returned by Erase when the erasure's record was not
// logged within Config.Wait: nothing was changed; repeat the erasure once
// the log writer runs.
var ErrNotLogged = errors.New("erasure: the erasure's record is not in the org's log yet; nothing was erased")

// Result is what Erase did.
type Result struct {
	// Events is the number of events whose stored personal fields of the
	// subject were replaced by their commitments.
	Events int `json:"events_erased"`
	// Kept is the number of events naming the subject whose plaintext was
	// left: logged after the cut, under a new salt, or not logged yet.
	Kept int `json:"events_kept"`
	// SaltDeleted is true when the subject had a salt, now deleted.
	SaltDeleted bool `json:"salt_deleted"`
}

// Eraser erases subjects. It is safe for concurrent use.
type Eraser struct {
	events Events
	tree   Tree
	cfg    Config
}

// New returns an Eraser.
func New(events Events, tree Tree, cfg Config) *Eraser {
	if cfg.Wait <= 0 {
		cfg.Wait = time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Eraser{events: events, tree: tree, cfg: cfg}
}

// Erase erases subject from org's events. recordID is the id of the
// audit.subject_erased event recorded for this erasure.
//
// In order: it waits until the record is logged (ErrNotLogged after
// Config.Wait, nothing changed); reads the subject's salt; rewrites the
// stored events the salt commits; deletes the salt; waits until the
// record is stored (events logged before it are then stored too, as a
// rule) and rewrites again, for events stored meanwhile. Repeating an
// erasure is harmless.
func (e *Eraser) Erase(ctx context.Context, org, subject, recordID string) (Result, error) {
	if !schemas.ValidOrgID(org) || subject == "" {
		return Result{}, fmt.Errorf("erasure: invalid org %q or empty subject", org)
	}
	if err := e.wait(ctx, func(ctx context.Context) error {
		_, err := e.tree.LeafByEvent(ctx, org, recordID)
		return err
	}, treestore.ErrNotFound); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return Result{}, ErrNotLogged
		}
		return Result{}, err
	}
	key := treestore.Key{Org: org, EventID: subject}
	found, err := e.tree.Salts(ctx, []treestore.Key{key})
	if err != nil {
		return Result{}, err
	}
	salt, ok := found[key]
	if !ok {
		// Nothing is committed under a salt of the subject any more (an
		// earlier erasure, or no personal field ever logged).
		res, err := e.pass(ctx, org, subject, nil)
		return res, err
	}
	res, err := e.pass(ctx, org, subject, salt)
	if err != nil {
		return Result{}, err
	}
	if err := e.tree.DeleteSalt(ctx, org, subject); err != nil {
		return Result{}, err
	}
	res.SaltDeleted = true
	err = e.wait(ctx, func(ctx context.Context) error {
		_, err := e.events.Get(ctx, org, recordID)
		return err
	}, eventstore.ErrNotFound)
	if err != nil {
		if ctx.Err() != nil {
			return res, err
		}
		e.cfg.Logger.Warn("erasure: its record was not stored in time; events stored later keep their plaintext until the erasure is repeated",
			zap.String("org_id", org), zap.String("record_id", recordID))
	}
	again, err := e.pass(ctx, org, subject, salt)
	if err != nil {
		return res, err
	}
	res.Events += again.Events
	res.Kept = again.Kept
	return res, nil
}

// wait polls probe until it stops returning notYet, for at most
// Config.Wait.
func (e *Eraser) wait(ctx context.Context, probe func(context.Context) error, notYet error) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Wait)
	defer cancel()
	for {
		err := probe(ctx)
		if !errors.Is(err, notYet) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.cfg.Poll):
		}
	}
}

// pass rewrites the stored events of subject whose stored leaf their
// fields, committed under salt, reproduce. A nil salt rewrites nothing
// and counts the events that still show the subject's plaintext.
func (e *Eraser) pass(ctx context.Context, org, subject string, salt []byte) (Result, error) {
	var res Result
	_, err := e.events.EraseSubject(ctx, org, subject, func(evs []schemas.Event) ([]schemas.Event, error) {
		out := make([]schemas.Event, len(evs))
		copy(out, evs)
		var todo []int
		for i, ev := range evs {
			if plaintext(ev, subject) {
				todo = append(todo, i)
			}
		}
		if len(todo) == 0 {
			return out, nil
		}
		if salt == nil {
			res.Kept = len(todo)
			return out, nil
		}
		ids := make([]string, len(todo))
		var keys []treestore.Key
		seen := map[string]bool{}
		for j, i := range todo {
			ids[j] = evs[i].ID
			for _, s := range tlog.Subjects(&evs[i]) {
				if !seen[s] && s != subject {
					seen[s] = true
					keys = append(keys, treestore.Key{Org: org, EventID: s})
				}
			}
		}
		leaves, err := e.tree.LeavesByEvent(ctx, org, ids)
		if err != nil {
			return nil, err
		}
		found, err := e.tree.Salts(ctx, keys)
		if err != nil {
			return nil, err
		}
		salts := tlog.Salts{subject: salt}
		for k, v := range found {
			salts[k.EventID] = v
		}
		for _, i := range todo {
			ev := evs[i]
			l, ok := leaves[ev.ID]
			if !ok {
				res.Kept++ // not logged yet
				continue
			}
			erased, _ := tlog.EraseSubject(ev, subject, salt)
			// The erased form must still be the logged leaf: then the
			// plaintext was committed under this salt, and the leaf, hence
			// every proof, is unchanged.
			leaf, _, err := tlog.Leaf(erased, salts)
			if err != nil || string(leaf) != string(l.Hash) {
				res.Kept++
				continue
			}
			out[i] = erased
			res.Events++
		}
		return out, nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("erasure: %w", err)
	}
	return res, nil
}

// plaintext reports whether ev holds a personal field of subject that is
// not erased.
func plaintext(ev schemas.Event, subject string) bool {
	_, n := tlog.EraseSubject(ev, subject, nil)
	return n > 0
}
