package eventstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/schemas"
)

// ErrEraseUnsupported is returned by EraseSubject on a cluster: the
// rewrite relies on a table local to the node that runs it.
var ErrEraseUnsupported = errors.New("eventstore: erasure is not supported in cluster mode")

// EraseFunc returns the erased form of stored events: for each event of
// evs, in order, the event with its subject's personal fields replaced
// (actor name, email, ip and user_agent, target names), or the event as
// it is when it must not change. It must change nothing else. Each event
// has its received_at.
type EraseFunc func(evs []schemas.Event) ([]schemas.Event, error)

// Erased reports what EraseSubject did.
type Erased struct {
	// Events is the number of distinct events that were rewritten.
	Events int
	// Copies is the number of stored copies examined (every row naming
	// the subject, expired rows and duplicate copies included).
	Copies int
}

// erasurePrefix names the tables EraseSubject builds the rewrite from.
const erasurePrefix = "erasure_"

// EraseSubject rewrites, in every stored copy of the org's events whose
// actor id or one of whose target ids is subject, the personal fields and
// the canonical bytes (raw) as erase says. Every row on disk is examined,
// expired rows and duplicate copies included. A changed field other than
// the personal fields is refused and nothing is written.
//
// The rewrite is one mutation of the events table (mutations_sync = 2),
// whose values come from a temporary table, so the mutation's own text —
// which ClickHouse keeps among the table's files — holds neither the old
// values nor the new ones. The id key table is brought in step (the new
// bytes' hash replaces the old one), so Insert still drops a redelivered
// copy of the original: a copy that differs from the stored event only in
// fields the store holds erased is taken as identical.
//
// The old values stay on disk in the parts the mutation replaced until
// the engine removes outdated parts (MergeTree setting old_parts_lifetime,
// 480 s by default). EraseSubject is safe for concurrent use; erasures run
// one at a time per Store.
func (s *Store) EraseSubject(ctx context.Context, orgID, subject string, erase EraseFunc) (Erased, error) {
	if err := s.check(); err != nil {
		return Erased{}, err
	}
	if !schemas.ValidOrgID(orgID) {
		return Erased{}, fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	if subject == "" {
		return Erased{}, errors.New("eventstore: erase: empty subject")
	}
	if s.l.clustered {
		return Erased{}, ErrEraseUnsupported
	}
	s.eraseMu.Lock()
	defer s.eraseMu.Unlock()
	if err := s.dropStaleErasureTables(ctx); err != nil {
		return Erased{}, err
	}
	copies, err := s.subjectCopies(ctx, orgID, subject)
	if err != nil {
		return Erased{}, err
	}
	res := Erased{Copies: len(copies)}
	var evs []schemas.Event
	seen := map[string]bool{}
	for _, c := range copies {
		if !seen[c.ev.ID] {
			seen[c.ev.ID] = true
			evs = append(evs, c.ev)
		}
	}
	if len(evs) == 0 {
		return res, nil
	}
	next, err := erase(evs)
	if err != nil {
		return Erased{}, err
	}
	if len(next) != len(evs) {
		return Erased{}, fmt.Errorf("eventstore: erase: %d events in, %d out", len(evs), len(next))
	}
	var recs []erasureRow
	for i, n := range next {
		old := evs[i]
		if n.ID != old.ID {
			return Erased{}, fmt.Errorf("eventstore: erase: event %s came back as %s", old.ID, n.ID)
		}
		if err := onlyPersonalChanged(old, n); err != nil {
			return Erased{}, fmt.Errorf("eventstore: erase event %s: %w", old.ID, err)
		}
		n.ReceivedAt, old.ReceivedAt = nil, nil
		raw, err := schemas.Canonical(n)
		if err != nil {
			return Erased{}, fmt.Errorf("eventstore: erase event %s: %w", old.ID, err)
		}
		was, err := schemas.Canonical(old)
		if err != nil {
			return Erased{}, fmt.Errorf("eventstore: erase event %s: %w", old.ID, err)
		}
		if bytes.Equal(raw, was) {
			continue
		}
		names := make([]string, len(n.Targets))
		for j, t := range n.Targets {
			names[j] = t.Name
		}
		recs = append(recs, erasureRow{ID: n.ID, Raw: string(raw), ActorName: n.Actor.Name, ActorEmail: n.Actor.Email,
			ActorIP: n.Actor.IP, ActorUserAgent: n.Actor.UserAgent, TargetNames: names})
	}
	if len(recs) == 0 {
		return res, nil
	}
	if err := s.rewrite(ctx, orgID, recs); err != nil {
		return Erased{}, err
	}
	res.Events = len(recs)
	s.log.Warn("subject erased from stored events", zap.String("org_id", orgID), zap.Int("events", res.Events))
	return res, nil
}

// erasureRow is one row of the temporary table a rewrite reads.
type erasureRow struct {
	ID             string   `json:"id"`
	Raw            string   `json:"raw"`
	ActorName      string   `json:"actor_name"`
	ActorEmail     string   `json:"actor_email"`
	ActorIP        string   `json:"actor_ip"`
	ActorUserAgent string   `json:"actor_user_agent"`
	TargetNames    []string `json:"target_names"`
}

const erasureStructure = "id String, raw String, actor_name String, actor_email String, actor_ip String, actor_user_agent String, target_names Array(String)"

// rewrite applies recs to the org's rows through a Join table dropped at
// the end (a table left by a crash is dropped by the next erasure once no
// mutation needs it).
func (s *Store) rewrite(ctx context.Context, org string, recs []erasureRow) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := erasurePrefix + hex.EncodeToString(rnd[:])
	tbl := s.l.db + "." + name
	lit := "'" + strings.Trim(s.l.db, "`") + "." + name + "'"
	if err := s.eng.Exec(ctx, "CREATE TABLE "+tbl+" ("+erasureStructure+") ENGINE = Join(ANY, LEFT, id)"); err != nil {
		return fmt.Errorf("eventstore: erase: %w", err)
	}
	defer func() {
		// Outlives a cancelled request: the table holds no erased value,
		// but it should not stay.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := s.eng.Exec(dctx, "DROP TABLE IF EXISTS "+tbl+" SYNC"); err != nil {
			s.log.Warn("erasure table not dropped; the next erasure drops it", zap.String("table", name), zap.Error(err))
		}
	}()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("eventstore: erase: %w", err)
		}
	}
	if err := s.eng.Exec(ctx, "INSERT INTO "+tbl+" SELECT * FROM format(JSONEachRow, '"+erasureStructure+"', {rows:String})",
		P("rows", b.String())); err != nil {
		return fmt.Errorf("eventstore: erase: fill %s: %w", name, err)
	}
	get := func(col string) string { return "joinGet(" + lit + ", '" + col + "', id)" }
	inSet := "org_id = {org:String} AND id IN (SELECT id FROM " + tbl + ")"
	// Every copy of each event, whatever its retention: rows past it are
	// still on disk until a merge deletes them.
	err := s.eng.Exec(ctx, "ALTER TABLE "+s.local+" UPDATE raw = "+get("raw")+
		", actor_name = "+get("actor_name")+", actor_email = "+get("actor_email")+
		", actor_ip = "+get("actor_ip")+", actor_user_agent = "+get("actor_user_agent")+
		", target_names = if(length("+get("target_names")+") = length(target_ids), "+get("target_names")+", target_names)"+
		" WHERE "+inSet+" SETTINGS mutations_sync = 2, allow_nondeterministic_mutations = 1", P("org", org))
	if err != nil {
		return fmt.Errorf("eventstore: erase: rewrite events: %w", err)
	}
	// The id key table: the rewritten bytes' hash first, then the old
	// hashes go. A crash between the two leaves both, which only widens
	// what Insert takes as identical.
	if err := s.eng.Exec(ctx, "INSERT INTO "+s.ids+idColumns+idSelectLogged+s.table+" WHERE "+inSet, P("org", org)); err != nil {
		return fmt.Errorf("eventstore: erase: key table: %w", err)
	}
	err = s.eng.Exec(ctx, "ALTER TABLE "+s.idsLocal+" DELETE WHERE "+inSet+" AND raw_sha256 != SHA256("+get("raw")+")"+
		" SETTINGS mutations_sync = 2, allow_nondeterministic_mutations = 1", P("org", org))
	if err != nil {
		return fmt.Errorf("eventstore: erase: key table: %w", err)
	}
	return nil
}

// dropStaleErasureTables drops the tables earlier erasures left behind
// (a crash before their DROP) that no unfinished mutation still reads.
func (s *Store) dropStaleErasureTables(ctx context.Context) error {
	db := strings.Trim(s.l.db, "`")
	tables, err := s.strings(ctx, "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})",
		P("db", db), P("p", erasurePrefix))
	if err != nil || len(tables) == 0 {
		return err
	}
	pending, err := s.strings(ctx, "SELECT command FROM system.mutations WHERE database = {db:String} AND NOT is_done", P("db", db))
	if err != nil {
		return err
	}
next:
	for _, n := range tables {
		for _, c := range pending {
			if strings.Contains(c, n) {
				continue next
			}
		}
		if err := s.eng.Exec(ctx, "DROP TABLE IF EXISTS "+s.l.db+".`"+n+"` SYNC"); err != nil {
			return fmt.Errorf("eventstore: erase: drop %s: %w", n, err)
		}
	}
	return nil
}

// strings runs a query of one String column.
func (s *Store) strings(ctx context.Context, query string, params ...Param) ([]string, error) {
	rows, err := s.eng.Query(ctx, query, params...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("eventstore: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: %w", err)
	}
	return out, nil
}

// storedCopy is one stored row of an event, decoded from its canonical
// bytes, with its received_at.
type storedCopy struct {
	ev schemas.Event
}

// subjectCopies returns every stored row of the org naming subject as
// actor or target: no FINAL, no retention filter.
func (s *Store) subjectCopies(ctx context.Context, org, subject string) ([]storedCopy, error) {
	rows, err := s.eng.Query(ctx, "SELECT raw, received_at FROM "+s.table+
		" WHERE org_id = {org:String} AND (actor_id = {sub:String} OR has(target_ids, {sub:String})) ORDER BY stream_seq",
		P("org", org), P("sub", subject))
	if err != nil {
		return nil, fmt.Errorf("eventstore: erase: read: %w", err)
	}
	defer rows.Close()
	var out []storedCopy
	for rows.Next() {
		var raw string
		var received time.Time
		if err := rows.Scan(&raw, &received); err != nil {
			return nil, fmt.Errorf("eventstore: erase: read: %w", err)
		}
		ev, err := schemas.Decode([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("eventstore: erase: stored bytes: %w", err)
		}
		received = received.UTC()
		ev.ReceivedAt = &received
		out = append(out, storedCopy{ev: ev})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: erase: read: %w", err)
	}
	return out, nil
}

// onlyPersonalChanged reports an error when b differs from a in anything
// but the personal fields.
func onlyPersonalChanged(a, b schemas.Event) error {
	if len(a.Targets) != len(b.Targets) {
		return errors.New("the erased event has other targets")
	}
	b.Actor.Name, b.Actor.Email, b.Actor.IP, b.Actor.UserAgent = a.Actor.Name, a.Actor.Email, a.Actor.IP, a.Actor.UserAgent
	b.Targets = append([]schemas.Target(nil), b.Targets...)
	for i := range b.Targets {
		b.Targets[i].Name = a.Targets[i].Name
	}
	a.ReceivedAt, b.ReceivedAt = nil, nil
	ca, err := schemas.Canonical(a)
	if err != nil {
		return err
	}
	cb, err := schemas.Canonical(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(ca, cb) {
		return errors.New("the erasure changed a field that is not personal")
	}
	return nil
}

// erasedCopyOf reports whether incoming is a copy of a stored event of the
// org whose stored form has erased fields: equal to it once those fields
// take the stored (erased) values. The original of an erased event, sent
// again, is such a copy.
func (s *Store) erasedCopyOf(ctx context.Context, org, id string, incoming []byte) (bool, error) {
	stored, err := s.strings(ctx, "SELECT raw FROM "+s.table+" WHERE org_id = {org:String} AND id = {id:String}",
		P("org", org), P("id", id))
	if err != nil {
		return false, err
	}
	in, err := schemas.Decode(incoming)
	if err != nil {
		return false, nil
	}
	for _, raw := range stored {
		if sameButErased([]byte(raw), in) {
			return true, nil
		}
	}
	return false, nil
}

// sameButErased reports whether in, with each personal field the stored
// event holds erased (a commitment) set to the stored value, has the
// stored canonical bytes.
func sameButErased(stored []byte, in schemas.Event) bool {
	st, err := schemas.Decode(stored)
	if err != nil || len(st.Targets) != len(in.Targets) {
		return false
	}
	take := func(dst *string, v string) {
		if isErasedValue(v) {
			*dst = v
		}
	}
	take(&in.Actor.Name, st.Actor.Name)
	take(&in.Actor.Email, st.Actor.Email)
	take(&in.Actor.IP, st.Actor.IP)
	take(&in.Actor.UserAgent, st.Actor.UserAgent)
	in.Targets = append([]schemas.Target(nil), in.Targets...)
	for i := range in.Targets {
		take(&in.Targets[i].Name, st.Targets[i].Name)
	}
	in.ReceivedAt = nil
	b, err := schemas.Canonical(in)
	return err == nil && bytes.Equal(b, stored)
}

// isErasedValue reports whether v is an erased personal field: the
// commitment "hmac-sha256:" + 64 lower-case hex digits that replaced its
// plaintext (platform/tlog.Commitment).
func isErasedValue(v string) bool {
	h, ok := strings.CutPrefix(v, "hmac-sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
