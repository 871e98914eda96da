package tlog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"

	"github.com/takumo/audit/schemas"
)

// SubjectKey is a subject's salt ready to commit with: its keyed
// HMAC-SHA256, reset between fields, so the key schedule is computed once
// per subject rather than once per field. A key made for a batch
// (NewBatchSubjectKey) also remembers the last commitment of each field
// path: the same person's events repeat their name, email, address and
// user agent, whose commitments are then returned again instead of
// computed. It is not safe for concurrent use.
type SubjectKey struct {
	mac     hash.Hash
	sum     [sha256.Size]byte
	scratch []byte
	memo    bool
	last    []commitmentMemo
}

// commitmentMemo is the commitment of value at path.
type commitmentMemo struct {
	path, value, commitment string
}

// NewSubjectKey returns the key of a salt.
func NewSubjectKey(salt []byte) *SubjectKey {
	return &SubjectKey{mac: hmac.New(sha256.New, salt)}
}

// NewBatchSubjectKey returns the key of a salt for committing many events
// (the log writer's, for one batch): it remembers each field path's last
// commitment.
func NewBatchSubjectKey(salt []byte) *SubjectKey {
	return &SubjectKey{mac: hmac.New(sha256.New, salt), memo: true}
}

// commitment returns Commitment(salt, path, value). A batch key keeps
// value until the path's next value.
func (k *SubjectKey) commitment(path, value string) string {
	m := -1
	for i := range k.last {
		if k.last[i].path == path {
			if k.last[i].value == value {
				return k.last[i].commitment
			}
			m = i
			break
		}
	}
	k.scratch = append(k.scratch[:0], path...)
	k.scratch = append(k.scratch, 0)
	k.scratch = append(k.scratch, value...)
	k.mac.Reset()
	k.mac.Write(k.scratch)
	var b [len(CommitmentPrefix) + 2*sha256.Size]byte
	copy(b[:], CommitmentPrefix)
	hex.Encode(b[len(CommitmentPrefix):], k.mac.Sum(k.sum[:0]))
	c := string(b[:])
	if !k.memo {
		return c
	}
	if m < 0 {
		k.last = append(k.last, commitmentMemo{path: path})
		m = len(k.last) - 1
	}
	k.last[m].value, k.last[m].commitment = value, c
	return c
}

// Hasher computes leaf hashes as Leaf does, without the commitments and
// reusing its buffers between events: the log writer's path. The zero
// Hasher is ready to use; it is not safe for concurrent use.
type Hasher struct {
	data    []byte
	targets []schemas.Target
}

// Leaf returns the leaf hash of e, its personal fields committed under the
// keys of their subjects that key returns (nil when the subject has no
// salt, which fails as Commit does: ErrNoSalt). The hash is the one Leaf
// returns for the same salts. e is not modified.
func (h *Hasher) Leaf(e *schemas.Event, key func(subject string) *SubjectKey) ([sha256.Size]byte, error) {
	return h.LeafFrom(e, nil, key)
}

// LeafFrom is Leaf for an event whose canonical bytes (schemas.Canonical,
// as the ingestor stores them) are raw: the leaf data takes e's members
// from details to reason from raw as they are instead of encoding them
// again (schemas.AppendCanonicalStoredFrom). raw must be the canonical
// bytes of e; nil encodes everything from e.
func (h *Hasher) LeafFrom(e *schemas.Event, raw []byte, key func(subject string) *SubjectKey) ([sha256.Size]byte, error) {
	ce := *e
	if len(e.Targets) > 0 {
		h.targets = append(h.targets[:0], e.Targets...)
		ce.Targets = h.targets
	}
	var (
		k          *SubjectKey
		keySubject string
		err        error
	)
	// commit replaces *v, the field at path of subject, by its commitment
	// (the name of target i is field 4+i, for the error).
	commit := func(subject, path string, v *string, field int) error {
		if *v == "" || IsCommitment(*v) {
			return nil
		}
		if k == nil || keySubject != subject {
			if k = key(subject); k == nil {
				name := path
				if field >= 4 {
					name = "targets." + strconv.Itoa(field-4) + ".name"
				}
				return fmt.Errorf("%w %q (%s)", ErrNoSalt, subject, name)
			}
			keySubject = subject
		}
		*v = k.commitment(path, *v)
		return nil
	}
	a := &ce.Actor
	// Paths and field pointers in separate arrays: the key keeps the
	// paths it is given, and an array of structs holding both would make
	// the event copy ce escape to the heap with them.
	fields := [...]*string{&a.Name, &a.Email, &a.IP, &a.UserAgent}
	for i, path := range [...]string{PathActorName, PathActorEmail, PathActorIP, PathActorUserAgent} {
		if err := commit(a.ID, path, fields[i], i); err != nil {
			return [sha256.Size]byte{}, err
		}
	}
	for i := range ce.Targets {
		if err := commit(ce.Targets[i].ID, PathTargetName, &ce.Targets[i].Name, 4+i); err != nil {
			return [sha256.Size]byte{}, err
		}
	}
	if ce.ReceivedAt == nil {
		return [sha256.Size]byte{}, errors.New("tlog: leaf of an event without received_at")
	}
	h.data = append(h.data[:0], 0) // RFC 6962 leaf prefix
	if raw != nil {
		h.data, err = schemas.AppendCanonicalStoredFrom(h.data, &ce, e, raw)
	} else {
		h.data, err = schemas.AppendCanonicalStored(h.data, &ce)
	}
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("tlog: leaf data: %w", err)
	}
	// The targets' copy holds strings of this event only.
	clear(h.targets)
	return sha256.Sum256(h.data), nil
}
