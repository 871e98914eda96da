package treestore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog"
)

// ErrNotFound is returned when a leaf or checkpoint does not exist.
var ErrNotFound = errors.New("treestore: not found")

// ErrCorrupt is wrapped by errors about stored data that contradicts the
// tree's invariants: a node with two different hashes, a missing node, a
// gap in the leaves.
var ErrCorrupt = errors.New("treestore: tree store is inconsistent")

// Config says where the tables are.
type Config struct {
	// Database holds the tables (created by eventstore migrations);
	// default "audit".
	Database string
}

// Store reads and writes the transparency log tables.
type Store struct {
	eng                               eventstore.Engine
	runs, byEvent, checkpoints, salts string
	eventsByID                        string
}

var _ tlog.NodeReader = (*Store)(nil)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// New returns a Store over eng.
func New(eng eventstore.Engine, cfg Config) (*Store, error) {
	if eng == nil {
		return nil, errors.New("treestore: nil engine")
	}
	if cfg.Database == "" {
		cfg.Database = "audit"
	}
	if !identRE.MatchString(cfg.Database) {
		return nil, fmt.Errorf("treestore: invalid database name %q", cfg.Database)
	}
	db := "`" + cfg.Database + "`"
	return &Store{eng: eng, runs: db + ".tlog_runs", byEvent: db + ".tlog_leaves_by_event",
		checkpoints: db + ".tlog_checkpoints", salts: db + ".tlog_subject_salts",
		eventsByID: db + ".events_by_id"}, nil
}

// appendTSV appends v escaped for the TabSeparated format: backslash,
// tab, newline, carriage return and NUL as their escapes.
func appendTSV(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return b
}

// tsv returns v escaped as appendTSV escapes it.
func tsv(v string) string {
	if !strings.ContainsAny(v, "\\\t\n\r\x00") {
		return v
	}
	return string(appendTSV(nil, v))
}

// tsvRow writes fields as one TabSeparated row.
func tsvRow(b *strings.Builder, fields ...string) {
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(tsv(f))
	}
	b.WriteByte('\n')
}

// Key names an event of an org.
type Key struct{ Org, EventID string }

// Logged returns, among keys, those the key table holds, with their log
// index: the logged events among those stored without a log index (the
// catch-up's question). An event the sealing ingestor stored is found
// through its stored log_index instead (LogIndices).
func (s *Store) Logged(ctx context.Context, keys []Key) (map[Key]uint64, error) {
	out := map[Key]uint64{}
	if len(keys) == 0 {
		return out, nil
	}
	// Two plain sets, which the key table's primary key (org_id,
	// event_id) prunes with; a pair of one org and another's id is
	// dropped below.
	var orgs, ids strings.Builder
	seen := map[string]bool{}
	want := make(map[Key]bool, len(keys))
	for _, k := range keys {
		want[k] = true
		if !seen[k.Org] {
			seen[k.Org] = true
			tsvRow(&orgs, k.Org)
		}
		tsvRow(&ids, k.EventID)
	}
	rows, err := s.eng.Query(ctx, "SELECT org_id, event_id, min(idx) FROM "+s.byEvent+
		" WHERE org_id IN (SELECT o FROM format(TabSeparated, 'o String', {orgs:String}))"+
		" AND event_id IN (SELECT e FROM format(TabSeparated, 'e String', {ids:String}))"+
		" GROUP BY org_id, event_id", eventstore.P("orgs", orgs.String()), eventstore.P("ids", ids.String()))
	if err != nil {
		return nil, fmt.Errorf("treestore: logged: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k   Key
			idx uint64
		)
		if err := rows.Scan(&k.Org, &k.EventID, &idx); err != nil {
			return nil, fmt.Errorf("treestore: logged: %w", err)
		}
		if want[k] {
			out[k] = idx
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("treestore: logged: %w", err)
	}
	return out, nil
}

// boundIDsMax is the most ids one statement lists as bound parameters.
// Each takes about 16 bytes of the statement, some statements list them
// twice, and the engine refuses a statement over 256 KiB (max_query_size):
// about 8,000 ids listed twice. Longer lists are read in pieces
// (inPieces).
const boundIDsMax = 2000

// inPieces calls f with consecutive pieces of ids, of at most boundIDsMax
// each, until f fails.
func inPieces(ids []string, f func(piece []string) error) error {
	for piece := range slices.Chunk(ids, boundIDsMax) {
		if err := f(piece); err != nil {
			return err
		}
	}
	return nil
}

// boundIDs returns the ids as a list of bound parameters ("{e0:String},
// {e1:String}, …") and the parameters, org's first ({org:String}).
func boundIDs(org string, ids []string) (string, []eventstore.Param) {
	var in strings.Builder
	params := make([]eventstore.Param, 0, len(ids)+1)
	params = append(params, eventstore.P("org", org))
	for i, id := range ids {
		if i > 0 {
			in.WriteString(", ")
		}
		name := "e" + strconv.Itoa(i)
		in.WriteString("{" + name + ":String}")
		params = append(params, eventstore.P(name, id))
	}
	return in.String(), params
}

// indexOf selects (event_id, idx): the log index of each event of org
// {org:String} whose id is in the list ids (an SQL tuple), from both places
// an index is kept: the log_index the sealing ingestor stores with the
// event, which the events' id table carries (migration 9), and the key
// table of leaves, which holds the index of events stored without one
// (logged before migration 8 or by the catch-up). Two primary-key reads;
// an event may come from both, readers take the smallest index.
func (s *Store) indexOf(ids string) string {
	return "SELECT event_id, idx FROM " + s.byEvent + " WHERE org_id = {org:String} AND event_id IN " + ids +
		" UNION ALL SELECT id AS event_id, assumeNotNull(log_index) AS idx FROM " + s.eventsByID +
		" WHERE org_id = {org:String} AND id IN " + ids + " AND log_index IS NOT NULL"
}

// LogIndices returns the log_index of those of the org's events ids that
// are logged; an id absent from the result is not logged (yet), or its
// event no longer exists. One query of point reads (indexOf) per
// boundIDsMax ids.
func (s *Store) LogIndices(ctx context.Context, org string, ids []string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(ids))
	err := inPieces(ids, func(ids []string) error {
		// A list of bound values, not a subquery: the primary keys then
		// read the granules of these ids only.
		in, params := boundIDs(org, ids)
		rows, err := s.eng.Query(ctx, "SELECT event_id, min(idx) FROM ("+s.indexOf("("+in+")")+") GROUP BY event_id", params...)
		if err != nil {
			return fmt.Errorf("treestore: log indices: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id  string
				idx uint64
			)
			if err := rows.Scan(&id, &idx); err != nil {
				return fmt.Errorf("treestore: log indices: %w", err)
			}
			out[id] = idx
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("treestore: log indices: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Salt is a subject's salt.
type Salt struct {
	Org, Subject string
	Salt         []byte
}

// Salts returns the salts of the subjects in keys (Key.EventID holds the
// subject id) that have one. When a subject has several (never written by
// one writer), the oldest wins.
func (s *Store) Salts(ctx context.Context, keys []Key) (map[Key][]byte, error) {
	out := map[Key][]byte{}
	if len(keys) == 0 {
		return out, nil
	}
	var b strings.Builder
	for _, k := range keys {
		tsvRow(&b, k.Org, k.EventID)
	}
	rows, err := s.eng.Query(ctx, "SELECT org_id, subject, hex(argMin(salt, created_at)) FROM "+s.salts+
		" WHERE (org_id, subject) IN (SELECT o, e FROM format(TabSeparated, 'o String, e String', {keys:String}))"+
		" GROUP BY org_id, subject", eventstore.P("keys", b.String()))
	if err != nil {
		return nil, fmt.Errorf("treestore: salts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k Key
			h string
		)
		if err := rows.Scan(&k.Org, &k.EventID, &h); err != nil {
			return nil, fmt.Errorf("treestore: salts: %w", err)
		}
		if out[k], err = hex.DecodeString(h); err != nil {
			return nil, fmt.Errorf("treestore: salts: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("treestore: salts: %w", err)
	}
	return out, nil
}

// PutSalts stores new salts in one INSERT (in RowBinary when the engine
// takes it: a batch of new subjects never passes through SQL text).
func (s *Store) PutSalts(ctx context.Context, salts []Salt) error {
	if len(salts) == 0 {
		return nil
	}
	for _, x := range salts {
		if len(x.Salt) != tlog.SaltSize {
			return fmt.Errorf("treestore: salt of %d bytes", len(x.Salt))
		}
	}
	now := time.Now().UTC()
	var err error
	if ins, ok := s.eng.(rowBinaryInserter); ok {
		b := make([]byte, 0, len(salts)*(2*tlog.SaltSize+16))
		for _, x := range salts {
			b = binary.AppendUvarint(b, uint64(len(x.Org)))
			b = append(b, x.Org...)
			b = binary.AppendUvarint(b, uint64(len(x.Subject)))
			b = append(b, x.Subject...)
			b = append(b, x.Salt...)
			b = binary.LittleEndian.AppendUint64(b, uint64(now.UnixMilli()))
		}
		err = ins.InsertRowBinary(ctx, "INSERT INTO "+s.salts+" (org_id, subject, salt, created_at)", b)
	} else {
		var b strings.Builder
		for _, x := range salts {
			tsvRow(&b, x.Org, x.Subject, hex.EncodeToString(x.Salt))
		}
		err = s.eng.Exec(ctx, "INSERT INTO "+s.salts+" (org_id, subject, salt, created_at) "+
			"SELECT o, e, unhex(h), {now:DateTime64(3)} FROM format(TabSeparated, 'o String, e String, h String', {data:String})",
			eventstore.P("data", b.String()), eventstore.P("now", now))
	}
	if err != nil {
		return fmt.Errorf("treestore: put %d salts: %w", len(salts), err)
	}
	return nil
}

// Subjects calls f with the id of every subject of the orgs that has a
// salt (a subject may come more than once), in one query: the log writer
// learns which subjects of an org are known and creates the salts of new
// ones without asking the store for each.
func (s *Store) Subjects(ctx context.Context, orgs []string, f func(org, subject string)) error {
	if len(orgs) == 0 {
		return nil
	}
	var list strings.Builder
	for _, o := range orgs {
		tsvRow(&list, o)
	}
	rows, err := s.eng.Query(ctx, "SELECT org_id, subject FROM "+s.salts+
		" WHERE org_id IN (SELECT o FROM format(TabSeparated, 'o String', {orgs:String}))", eventstore.P("orgs", list.String()))
	if err != nil {
		return fmt.Errorf("treestore: subjects: %w", err)
	}
	defer rows.Close()
	var org, subject string
	for rows.Next() {
		if err := rows.Scan(&org, &subject); err != nil {
			return fmt.Errorf("treestore: subjects: %w", err)
		}
		f(org, subject)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("treestore: subjects: %w", err)
	}
	return nil
}

// DeleteSalt removes a subject's salt (crypto-shredding: the commitments
// to the subject's fields can no longer be linked to any value). It is a
// mutation that rewrites the parts holding the salt and returns once it is
// done (a lightweight DELETE would only mask the row and leave the bytes
// in the part); the replaced parts leave the disk when the engine removes
// outdated parts (old_parts_lifetime).
func (s *Store) DeleteSalt(ctx context.Context, org, subject string) error {
	err := s.eng.Exec(ctx, "ALTER TABLE "+s.salts+" DELETE WHERE org_id = {org:String} AND subject = {s:String} SETTINGS mutations_sync = 2",
		eventstore.P("org", org), eventstore.P("s", subject))
	if err != nil {
		return fmt.Errorf("treestore: delete salt: %w", err)
	}
	return nil
}

// StoredCheckpoint is a signed checkpoint as stored.
type StoredCheckpoint struct {
	Org      string
	Size     uint64
	Root     []byte
	Note     []byte
	KeyHash  uint32
	SignedAt time.Time
}

// PutCheckpoint stores a signed checkpoint.
func (s *Store) PutCheckpoint(ctx context.Context, c StoredCheckpoint) error {
	err := s.eng.Exec(ctx, "INSERT INTO "+s.checkpoints+" (org_id, size, root, note, key_hash, signed_at) "+
		"SELECT {org:String}, {size:UInt64}, unhex({root:String}), {note:String}, {kh:UInt32}, {at:DateTime64(3)}",
		eventstore.P("org", c.Org), eventstore.P("size", c.Size), eventstore.P("root", hex.EncodeToString(c.Root)),
		eventstore.P("note", string(c.Note)), eventstore.P("kh", c.KeyHash), eventstore.P("at", c.SignedAt.UTC()))
	if err != nil {
		return fmt.Errorf("treestore: put checkpoint: %w", err)
	}
	return nil
}

// PutCheckpoints stores signed checkpoints in one INSERT.
func (s *Store) PutCheckpoints(ctx context.Context, cs []StoredCheckpoint) error {
	if len(cs) == 0 {
		return nil
	}
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(tsv(c.Org))
		b.WriteByte('\t')
		b.WriteString(strconv.FormatUint(c.Size, 10))
		b.WriteByte('\t')
		b.WriteString(hex.EncodeToString(c.Root))
		b.WriteByte('\t')
		b.WriteString(tsv(string(c.Note)))
		b.WriteByte('\t')
		b.WriteString(strconv.FormatUint(uint64(c.KeyHash), 10))
		b.WriteByte('\t')
		b.WriteString(strconv.FormatInt(c.SignedAt.UnixMilli(), 10))
		b.WriteByte('\n')
	}
	err := s.eng.Exec(ctx, "INSERT INTO "+s.checkpoints+" (org_id, size, root, note, key_hash, signed_at) "+
		"SELECT o, n, unhex(r), t, k, fromUnixTimestamp64Milli(m, 'UTC') FROM format(TabSeparated, 'o String, n UInt64, r String, t String, k UInt32, m Int64', {data:String})",
		eventstore.P("data", b.String()))
	if err != nil {
		return fmt.Errorf("treestore: put %d checkpoints: %w", len(cs), err)
	}
	return nil
}

// LatestCheckpoint returns the org's checkpoint of the largest size, or
// ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context, org string) (StoredCheckpoint, error) {
	cs, err := s.checkpointsWhere(ctx, "org_id = {org:String} ORDER BY size DESC, signed_at DESC LIMIT 1", eventstore.P("org", org))
	if err != nil {
		return StoredCheckpoint{}, err
	}
	if len(cs) == 0 {
		return StoredCheckpoint{}, ErrNotFound
	}
	return cs[0], nil
}

// CheckpointAt returns the org's checkpoint of a size, or ErrNotFound.
func (s *Store) CheckpointAt(ctx context.Context, org string, size uint64) (StoredCheckpoint, error) {
	cs, err := s.checkpointsWhere(ctx, "org_id = {org:String} AND size = {size:UInt64} ORDER BY signed_at DESC LIMIT 1",
		eventstore.P("org", org), eventstore.P("size", size))
	if err != nil {
		return StoredCheckpoint{}, err
	}
	if len(cs) == 0 {
		return StoredCheckpoint{}, ErrNotFound
	}
	return cs[0], nil
}

// Checkpoints returns the org's checkpoints in size order.
func (s *Store) Checkpoints(ctx context.Context, org string) ([]StoredCheckpoint, error) {
	return s.checkpointsWhere(ctx, "org_id = {org:String} ORDER BY size, signed_at", eventstore.P("org", org))
}

func (s *Store) checkpointsWhere(ctx context.Context, where string, params ...eventstore.Param) ([]StoredCheckpoint, error) {
	rows, err := s.eng.Query(ctx, "SELECT org_id, size, hex(root), note, key_hash, signed_at FROM "+s.checkpoints+" WHERE "+where, params...)
	if err != nil {
		return nil, fmt.Errorf("treestore: checkpoints: %w", err)
	}
	defer rows.Close()
	var out []StoredCheckpoint
	for rows.Next() {
		var (
			c    StoredCheckpoint
			h, n string
		)
		if err := rows.Scan(&c.Org, &c.Size, &h, &n, &c.KeyHash, &c.SignedAt); err != nil {
			return nil, fmt.Errorf("treestore: checkpoints: %w", err)
		}
		if c.Root, err = hex.DecodeString(h); err != nil {
			return nil, fmt.Errorf("treestore: checkpoints: %w", err)
		}
		c.Note = []byte(n)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("treestore: checkpoints: %w", err)
	}
	return out, nil
}
