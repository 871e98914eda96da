package tlog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/takumo/audit/schemas"
)

// CommitmentPrefix starts every commitment, so a commitment is never read
// as a value: "hmac-sha256:" followed by 64 lower-case hex digits.
const CommitmentPrefix = "hmac-sha256:"

// SaltSize is the size of a subject salt in bytes.
const SaltSize = 32

// Personal field paths. Actor fields belong to the subject actor.id; a
// target's name belongs to the subject of that target's id. In the map
// of Commitments, a target's name is "targets.<i>.name".
const (
	PathActorName      = "actor.name"
	PathActorEmail     = "actor.email"
	PathActorIP        = "actor.ip"
	PathActorUserAgent = "actor.user_agent"
	PathTargetName     = "targets.name"
)

// PersonalFields lists the field paths replaced by commitments in a leaf.
var PersonalFields = []string{PathActorName, PathActorEmail, PathActorIP, PathActorUserAgent, PathTargetName}

// Commitments maps the personal fields of one event to their commitments:
// keys are "actor.name", "actor.email", "actor.ip", "actor.user_agent" and
// "targets.<i>.name". Empty fields have no commitment (they are left empty
// in the leaf).
type Commitments map[string]string

// Salts maps a subject id (an actor id or a target id) to its salt.
type Salts map[string][]byte

// ErrNoSalt is wrapped by the error Commit returns when a personal field is
// set and its subject has no salt.
var ErrNoSalt = errors.New("tlog: no salt for subject")

// Commitment returns the commitment to value at path under salt:
// CommitmentPrefix + hex(HMAC-SHA256(salt, path || 0x00 || value)).
func Commitment(salt []byte, path, value string) string {
	return NewSubjectKey(salt).commitment(path, value)
}

// IsCommitment reports whether s has the form of a commitment.
func IsCommitment(s string) bool {
	h, ok := strings.CutPrefix(s, CommitmentPrefix)
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Subjects returns the subject ids whose salts committing e needs: the
// actor id when an actor personal field is set, and the id of each target
// with a name. Each id appears once.
func Subjects(e *schemas.Event) []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	a := &e.Actor
	if a.Name != "" || a.Email != "" || a.IP != "" || a.UserAgent != "" {
		add(a.ID)
	}
	for i := range e.Targets {
		if e.Targets[i].Name != "" {
			add(e.Targets[i].ID)
		}
	}
	return out
}

// Commit returns e with every non-empty personal field replaced by its
// commitment under the salt of its subject, and the commitments. e is not
// modified. A field that already holds a commitment is kept as it is (an
// erased subject's fields are stored as their commitments).
func Commit(e schemas.Event, salts Salts) (schemas.Event, Commitments, error) {
	c := Commitments{}
	// One subject key per run of fields of the same subject.
	var (
		k          *SubjectKey
		keySubject string
	)
	field := func(subject, path, key string, v *string) error {
		if *v == "" {
			return nil
		}
		if IsCommitment(*v) {
			c[key] = *v
			return nil
		}
		if k == nil || keySubject != subject {
			salt, ok := salts[subject]
			if !ok {
				return fmt.Errorf("%w %q (%s)", ErrNoSalt, subject, key)
			}
			k, keySubject = NewSubjectKey(salt), subject
		}
		*v = k.commitment(path, *v)
		c[key] = *v
		return nil
	}
	a := &e.Actor
	for _, f := range []struct {
		path string
		v    *string
	}{{PathActorName, &a.Name}, {PathActorEmail, &a.Email}, {PathActorIP, &a.IP}, {PathActorUserAgent, &a.UserAgent}} {
		if err := field(a.ID, f.path, f.path, f.v); err != nil {
			return schemas.Event{}, nil, err
		}
	}
	if len(e.Targets) > 0 {
		ts := make([]schemas.Target, len(e.Targets))
		copy(ts, e.Targets)
		for i := range ts {
			if err := field(ts[i].ID, PathTargetName, "targets."+strconv.Itoa(i)+".name", &ts[i].Name); err != nil {
				return schemas.Event{}, nil, err
			}
		}
		e.Targets = ts
	}
	return e, c, nil
}

// ApplyCommitments returns e with the personal fields named in c replaced
// by the commitments of c, whatever they held: the committed form of an
// event whose plaintext is gone (an erased subject). It fails when c names
// a field e does not have or holds something that is not a commitment.
func ApplyCommitments(e schemas.Event, c Commitments) (schemas.Event, error) {
	if len(e.Targets) > 0 {
		e.Targets = append([]schemas.Target(nil), e.Targets...)
	}
	for k, v := range c {
		if !IsCommitment(v) {
			return schemas.Event{}, fmt.Errorf("tlog: commitment for %s is not of the form %s<64 hex>", k, CommitmentPrefix)
		}
		switch k {
		case PathActorName:
			e.Actor.Name = v
		case PathActorEmail:
			e.Actor.Email = v
		case PathActorIP:
			e.Actor.IP = v
		case PathActorUserAgent:
			e.Actor.UserAgent = v
		default:
			i, ok := targetIndex(k)
			if !ok || i >= len(e.Targets) {
				return schemas.Event{}, fmt.Errorf("tlog: commitment for unknown field %q", k)
			}
			e.Targets[i].Name = v
		}
	}
	return e, nil
}

func targetIndex(k string) (int, bool) {
	rest, ok := strings.CutPrefix(k, "targets.")
	if !ok {
		return 0, false
	}
	n, ok := strings.CutSuffix(rest, ".name")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || strconv.Itoa(i) != n {
		return 0, false
	}
	return i, true
}

// LeafData returns the bytes a leaf hashes: the RFC 8785 canonical JSON of
// the committed event, received_at included. e must already be committed
// (see Commit) and have ReceivedAt set.
func LeafData(committed schemas.Event) ([]byte, error) {
	if committed.ReceivedAt == nil {
		return nil, errors.New("tlog: leaf of an event without received_at")
	}
	// The direct encoder: the bytes of Canonicalize(json.Marshal(e)).
	b, err := schemas.CanonicalStored(committed)
	if err != nil {
		return nil, fmt.Errorf("tlog: leaf data: %w", err)
	}
	return b, nil
}

// LeafHash returns the RFC 6962 leaf hash of data: SHA-256(0x00 || data).
func LeafHash(data []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(data) }

// Leaf commits e under salts and returns its leaf hash and commitments.
func Leaf(e schemas.Event, salts Salts) ([]byte, Commitments, error) {
	ce, c, err := Commit(e, salts)
	if err != nil {
		return nil, nil, err
	}
	d, err := LeafData(ce)
	if err != nil {
		return nil, nil, err
	}
	return LeafHash(d), c, nil
}

// EraseSubject returns e with every non-empty personal field of subject —
// the actor's fields when the actor id is subject, and the name of each
// target whose id is subject — replaced by its commitment under salt, and
// the number of fields replaced. Fields already holding a commitment are
// left as they are, so erasing twice changes nothing. The committed form
// of the result, hence its leaf, is that of e when salt is the salt e was
// logged with. e is not modified.
func EraseSubject(e schemas.Event, subject string, salt []byte) (schemas.Event, int) {
	n := 0
	field := func(path string, v *string) {
		if *v == "" || IsCommitment(*v) {
			return
		}
		*v = Commitment(salt, path, *v)
		n++
	}
	if e.Actor.ID == subject {
		field(PathActorName, &e.Actor.Name)
		field(PathActorEmail, &e.Actor.Email)
		field(PathActorIP, &e.Actor.IP)
		field(PathActorUserAgent, &e.Actor.UserAgent)
	}
	if len(e.Targets) > 0 {
		e.Targets = append([]schemas.Target(nil), e.Targets...)
		for i := range e.Targets {
			if e.Targets[i].ID == subject {
				field(PathTargetName, &e.Targets[i].Name)
			}
		}
	}
	return e, n
}
