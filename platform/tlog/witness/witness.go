// Package witness is how an organization's signed checkpoints reach the
// systems the organization runs itself — its webhook endpoints and SIEM
// destinations — so that the customer, not the operator, keeps the
// evidence ("witnesses" the log).
//
// The log writer publishes every checkpoint it signs as one Record on
// Subject(org, keyID), "audit.checkpoints.<org_id>.<key_id>". The subject
// is bound by AUDIT_FANOUT (platform/topology), so checkpoints travel the
// same bounded stream as the events the webhook dispatcher and the SIEM
// forwarder already read, in the order they were published. Those roles
// forward the record as its own record type, Type ("audit.checkpoint"),
// which their action filters select like an action.
//
// The Record's Note is the evidence: the C2SP tlog-checkpoint signed note,
// exactly as signed. The other fields repeat what the note says, for
// receivers that index or display records; a verifier trusts only the
// note and the verifier key it pinned (platform/tlog.Verifiers). Only the
// log writer's identity may publish on the subject (platform/natsauth),
// and a checkpoint forged by anyone else fails signature verification.
//
// The package uses the standard library only, so the delivery roles link
// none of the log's dependencies. Its functions are pure and safe for
// concurrent use.
package witness

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Type is the record type of a checkpoint: the webhook event type, the
// syslog MSGID, the CEF and LEEF event class, and what action filters
// match a checkpoint against ("audit.checkpoint", "audit.*", "*").
const Type = "audit.checkpoint"

// SubjectPrefix and Subjects are the subjects checkpoints are published
// on.
const (
	SubjectPrefix = "audit.checkpoints"
	Subjects      = SubjectPrefix + ".>"
)

// Subject returns the subject of an org's checkpoint signed with key id
// keyID (8 lower-case hex digits): "audit.checkpoints.<org_id>.<key_id>".
// The org id is one subject token (schemas.ValidOrgID).
func Subject(org, keyID string) string { return SubjectPrefix + "." + org + "." + keyID }

// IsSubject reports whether a message subject carries a checkpoint.
func IsSubject(subject string) bool { return strings.HasPrefix(subject, SubjectPrefix+".") }

// KeyID formats a note key hash as a key id, 8 lower-case hex digits.
func KeyID(hash uint32) string { return fmt.Sprintf("%08x", hash) }

// Record is one signed checkpoint as published and delivered.
type Record struct {
	// OrgID is the organization whose log the checkpoint covers.
	OrgID string `json:"org_id"`
	// Origin is the log's origin, "<deployment>/<org_id>".
	Origin string `json:"origin"`
	// TreeSize is the number of events in the log at this checkpoint.
	TreeSize uint64 `json:"tree_size"`
	// RootHash is the Merkle tree root, standard base64 (as in the note).
	RootHash string `json:"root_hash"`
	// KeyName and KeyID identify the signing key: its name and its key id,
	// the 32-bit key hash of the signed note as 8 hex digits.
	KeyName string `json:"key_name"`
	KeyID   string `json:"key_id"`
	// SignedAt is when the writer signed the checkpoint (UTC, ms).
	SignedAt time.Time `json:"signed_at"`
	// Note is the signed note, exactly as signed (several lines, ending in
	// a newline). It is what a verifier checks.
	Note string `json:"note"`
}

// ID identifies the checkpoint among every record sent to one receiver:
// "ckpt_<org_id>_<tree_size>_<key_id>". Deliveries use it where events use
// their event id (webhook-id, CEF externalId, LEEF eventId, the syslog and
// HEC id fields, OCSF metadata.uid), so receivers deduplicate both alike.
func (r Record) ID() string {
	return "ckpt_" + r.OrgID + "_" + strconv.FormatUint(r.TreeSize, 10) + "_" + r.KeyID
}

// NoteBase64 is the note in standard base64, for formats that cannot
// carry a line break in a value.
func (r Record) NoteBase64() string { return base64.StdEncoding.EncodeToString([]byte(r.Note)) }

// ErrInvalid is wrapped by every error Decode and Validate return.
var ErrInvalid = errors.New("witness: invalid checkpoint record")

// Validate checks that the record is complete and that its fields agree
// with the note's body (origin, size, root). It does not check the
// signature: only a verifier holding the key can.
func (r Record) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	switch {
	case r.OrgID == "" || strings.ContainsAny(r.OrgID, ". *>\t\r\n"):
		return bad("org_id %q", r.OrgID)
	case r.Origin == "" || !strings.HasSuffix(r.Origin, "/"+r.OrgID):
		return bad("origin %q does not name org %q", r.Origin, r.OrgID)
	case len(r.KeyID) != 8 || strings.Trim(r.KeyID, "0123456789abcdef") != "":
		return bad("key_id %q is not 8 hex digits", r.KeyID)
	case r.TreeSize == 0:
		return bad("tree_size is 0")
	case r.SignedAt.IsZero():
		return bad("signed_at missing")
	}
	text, _, ok := strings.Cut(r.Note, "\n\n")
	lines := strings.Split(text, "\n")
	if !ok || len(lines) < 3 {
		return bad("note is not a signed checkpoint")
	}
	if lines[0] != r.Origin || lines[1] != strconv.FormatUint(r.TreeSize, 10) || lines[2] != r.RootHash {
		return bad("fields do not match the note (origin %q, size %s, root %s)", lines[0], lines[1], lines[2])
	}
	return nil
}

// Encode returns the record's JSON, the body of its bus message.
func (r Record) Encode() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	r.SignedAt = r.SignedAt.UTC().Truncate(time.Millisecond)
	return json.Marshal(r)
}

// Decode reads a record published by the log writer and validates it.
func Decode(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := r.Validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// DecodeMessage decodes a checkpoint message and checks that its subject
// names the record's org and key.
func DecodeMessage(subject string, data []byte) (Record, error) {
	r, err := Decode(data)
	if err != nil {
		return Record{}, err
	}
	if subject != Subject(r.OrgID, r.KeyID) {
		return Record{}, fmt.Errorf("%w: subject %q does not match org %q and key %s", ErrInvalid, subject, r.OrgID, r.KeyID)
	}
	return r, nil
}

// FromNote returns the record of a checkpoint the writer signed: note is
// the signed note, keyHash the hash of the key that signed it. The root
// and the key's name are read from the note.
func FromNote(org, origin string, size uint64, keyHash uint32, signedAt time.Time, note []byte) Record {
	r := Record{OrgID: org, Origin: origin, TreeSize: size, KeyID: KeyID(keyHash),
		SignedAt: signedAt.UTC().Truncate(time.Millisecond), Note: string(note)}
	text, sigs, _ := strings.Cut(r.Note, "\n\n")
	if lines := strings.Split(text, "\n"); len(lines) >= 3 {
		r.RootHash = lines[2]
	}
	// Signature lines: "— <key name> <base64(key hash || signature)>".
	for _, line := range strings.Split(sigs, "\n") {
		name, sig, ok := strings.Cut(strings.TrimPrefix(line, "\u2014 "), " ")
		if !ok || !strings.HasPrefix(line, "\u2014 ") {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil && len(b) >= 4 &&
			uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]) == keyHash {
			r.KeyName = name
			break
		}
	}
	return r
}

// ExtractNote returns the signed note a saved checkpoint holds, whatever
// form the customer kept it in: the note itself; a record as delivered in
// JSON — a webhook body ("data"), a witness.Record or NDJSON line
// ("note"), a Splunk HEC envelope ("event"), an OCSF object
// ("unmapped.checkpoint"); or the note in base64, as CEF (cs4) and LEEF
// (checkpointNoteBase64) carry it. Anything else is returned unchanged,
// for the verifier to refuse — so is JSON that is ambiguous about its
// note: two different notes in those places, or an object with a key
// twice, which JSON readers resolve differently.
func ExtractNote(b []byte) []byte {
	t := strings.TrimSpace(string(b))
	if strings.HasPrefix(t, "{") {
		var v map[string]any
		if json.Unmarshal([]byte(t), &v) != nil || hasDuplicateKey([]byte(t)) {
			return b
		}
		var found string
		for _, path := range [][]string{{"note"}, {"data", "note"}, {"event", "note"}, {"unmapped", "checkpoint", "note"}} {
			n, _ := member(v, path).(string)
			if n == "" {
				continue
			}
			if found != "" && n != found {
				return b
			}
			found = n
		}
		if found != "" {
			return []byte(found)
		}
		return b
	}
	if !strings.ContainsAny(t, "\n ") {
		if d, err := base64.StdEncoding.DecodeString(t); err == nil && strings.Contains(string(d), "\n\n\u2014 ") {
			return d
		}
	}
	return b
}

// member returns the value at path in nested objects (keys matched
// exactly), or nil.
func member(v map[string]any, path []string) any {
	var cur any = v
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// hasDuplicateKey reports whether an object of the JSON document data has
// a key twice (or data is not JSON).
func hasDuplicateKey(data []byte) bool {
	type frame struct {
		keys      map[string]bool // nil for an array
		expectKey bool
	}
	var stack []*frame
	d := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if top != nil && top.keys != nil {
				top.expectKey = true // this value ends with its closing delimiter
			}
			f := &frame{}
			if tok == json.Delim('{') {
				f.keys, f.expectKey = map[string]bool{}, true
			}
			stack = append(stack, f)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if top == nil || top.keys == nil {
				continue
			}
			if top.expectKey {
				k, _ := tok.(string)
				if top.keys[k] {
					return true
				}
				top.keys[k] = true
				top.expectKey = false
			} else {
				top.expectKey = true
			}
		}
	}
}
