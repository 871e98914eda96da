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
// user agent, whose commitments are then copied instead of computed
// again. It is not safe for concurrent use.
type SubjectKey struct {
	mac  hash.Hash
	sum  [sha256.Size]byte
	memo bool
	last []commitmentMemo
}

// commitmentMemo is the commitment of value at path.
type commitmentMemo struct {
	path, value string
	commitment  []byte
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

// appendCommitment appends Commitment(salt, path, value) to dst; scratch
// is a buffer it may reuse, returned grown. The key keeps value until
// the path's next value.
func (k *SubjectKey) appendCommitment(dst, scratch []byte, path, value string) ([]byte, []byte) {
	m := -1
	for i := range k.last {
		if k.last[i].path == path {
			if k.last[i].value == value {
				return append(dst, k.last[i].commitment...), scratch
			}
			m = i
			break
		}
	}
	scratch = append(scratch[:0], path...)
	scratch = append(scratch, 0)
	scratch = append(scratch, value...)
	k.mac.Reset()
	k.mac.Write(scratch)
	start := len(dst)
	dst = append(dst, CommitmentPrefix...)
	dst = hex.AppendEncode(dst, k.mac.Sum(k.sum[:0]))
	if !k.memo {
		return dst, scratch
	}
	if m < 0 {
		k.last = append(k.last, commitmentMemo{path: path})
		m = len(k.last) - 1
	}
	k.last[m].value = value
	k.last[m].commitment = append(k.last[m].commitment[:0], dst[start:]...)
	return dst, scratch
}

// Hasher computes leaf hashes as Leaf does, without the commitments and
// reusing its buffers between events: the log writer's path. The zero
// Hasher is ready to use; it is not safe for concurrent use.
type Hasher struct {
	data, scratch, commitments []byte
	targets                    []schemas.Target
	// fields: where each replaced field's commitment sits in commitments.
	fields []committedField
}

// committedField: field 0-3 are the actor's name, email, ip and user
// agent, 4+i the name of target i.
type committedField struct {
	field, start, end int
}

// Leaf returns the leaf hash of e, its personal fields committed under the
// keys of their subjects that key returns (nil when the subject has no
// salt, which fails as Commit does: ErrNoSalt). The hash is the one Leaf
// returns for the same salts. e is not modified.
func (h *Hasher) Leaf(e *schemas.Event, key func(subject string) *SubjectKey) ([sha256.Size]byte, error) {
	return h.LeafFrom(e, nil, key)
}

// LeafFrom is Leaf for an event whose canonical bytes (schemas.Canonical,
// as the ingestor stores them) are raw: the leaf data takes e's encoded
// details from raw instead of encoding them again
// (schemas.AppendCanonicalStoredFrom). raw must be the canonical bytes of
// e; nil encodes everything from e.
func (h *Hasher) LeafFrom(e *schemas.Event, raw []byte, key func(subject string) *SubjectKey) ([sha256.Size]byte, error) {
	ce := *e
	if len(e.Targets) > 0 {
		h.targets = append(h.targets[:0], e.Targets...)
		ce.Targets = h.targets
	}
	// The commitments are written one after the other into one buffer,
	// then made strings in one go.
	h.commitments, h.fields = h.commitments[:0], h.fields[:0]
	var (
		k          *SubjectKey
		keySubject string
	)
	// commit commits v, the field at path of subject (numbered as in
	// committedField).
	commit := func(subject, path, v string, field int) error {
		if v == "" || IsCommitment(v) {
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
		start := len(h.commitments)
		h.commitments, h.scratch = k.appendCommitment(h.commitments, h.scratch, path, v)
		h.fields = append(h.fields, committedField{field: field, start: start, end: len(h.commitments)})
		return nil
	}
	a := &ce.Actor
	for i, f := range [...]struct{ path, v string }{
		{PathActorName, a.Name}, {PathActorEmail, a.Email}, {PathActorIP, a.IP}, {PathActorUserAgent, a.UserAgent},
	} {
		if err := commit(a.ID, f.path, f.v, i); err != nil {
			return [sha256.Size]byte{}, err
		}
	}
	for i := range ce.Targets {
		if err := commit(ce.Targets[i].ID, PathTargetName, ce.Targets[i].Name, 4+i); err != nil {
			return [sha256.Size]byte{}, err
		}
	}
	if len(h.fields) > 0 {
		s := string(h.commitments)
		for _, f := range h.fields {
			c := s[f.start:f.end]
			switch f.field {
			case 0:
				a.Name = c
			case 1:
				a.Email = c
			case 2:
				a.IP = c
			case 3:
				a.UserAgent = c
			default:
				ce.Targets[f.field-4].Name = c
			}
		}
	}
	if ce.ReceivedAt == nil {
		return [sha256.Size]byte{}, errors.New("tlog: leaf of an event without received_at")
	}
	var err error
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
