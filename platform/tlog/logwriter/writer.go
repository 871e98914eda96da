package logwriter

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/transparency-dev/merkle/compact"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/schemas"
)

// Store is what the Writer needs from the tree store.
type Store interface {
	tlog.NodeReader
	Trees(ctx context.Context, orgs []string) (map[string]treestore.OrgTree, error)
	Unsigned(ctx context.Context) ([]string, error)
	Logged(ctx context.Context, keys []treestore.Key) (map[treestore.Key]uint64, error)
	Salts(ctx context.Context, keys []treestore.Key) (map[treestore.Key][]byte, error)
	Subjects(ctx context.Context, orgs []string, f func(org, subject string)) error
	PutSalts(ctx context.Context, salts []treestore.Salt) error
	WriteRuns(ctx context.Context, token string, runs []treestore.Run) error
	LeavesAfter(ctx context.Context, seq uint64) ([]treestore.SealedLeaf, error)
	LastLoggedSeq(ctx context.Context, near uint64) (uint64, error)
	LatestCheckpoint(ctx context.Context, org string) (treestore.StoredCheckpoint, error)
	PutCheckpoint(ctx context.Context, c treestore.StoredCheckpoint) error
	Roots(ctx context.Context, sizes map[string]uint64) (map[string][]byte, error)
	PutCheckpoints(ctx context.Context, cs []treestore.StoredCheckpoint) error
}

var _ Store = (*treestore.Store)(nil)

// ErrLeaseLost is returned by Serve when the writer lost its lease, and
// by Seal once the lease is in doubt.
var ErrLeaseLost = errors.New("logwriter: lease lost")

// Config configures a Writer.
type Config struct {
	// Deployment names the deployment in checkpoint origins
	// ("<deployment>/<org>"). Required.
	Deployment string
	// CheckpointInterval: how often grown trees get a signed checkpoint;
	// default 10s.
	CheckpointInterval time.Duration
	// LeaseBucket is the KV bucket holding the writer lease, which the
	// topology owner creates (topology.TlogLeaseBucketConfig); default
	// "AUDIT_TLOG_LEASE". The lease lives for the bucket's TTL.
	LeaseBucket string
	// Instance identifies this process in the lease; default random. It
	// must not start with '{' (what the lease takes for a server's reply).
	Instance string
	// Logger; default no-op.
	Logger *zap.Logger
	// Unlogged, when set, returns up to limit stored events without a
	// log index whose stream sequence is above after, in stream order
	// (eventstore.Store.Unlogged): Serve logs those the stream confirms
	// before the ingestor seals, so that no event stored by an earlier
	// version stays out of the log.
	Unlogged func(ctx context.Context, after uint64, limit int) ([]Entry, error)
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 10 * time.Second
	}
	if c.LeaseBucket == "" {
		c.LeaseBucket = "AUDIT_TLOG_LEASE"
	}
	if c.Instance == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.Instance = hex.EncodeToString(b[:])
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if c.Deployment == "" {
		errs = append(errs, errors.New("deployment name is required"))
	}
	if c.CheckpointInterval <= 0 {
		errs = append(errs, fmt.Errorf("checkpoint interval must be positive, got %s", c.CheckpointInterval))
	}
	if c.Instance == "" || foreignLease([]byte(c.Instance)) {
		errs = append(errs, fmt.Errorf("instance must be non-empty and not start with '{', got %q", c.Instance))
	}
	return errors.Join(errs...)
}

// orgState is the right edge of an org's tree and its last checkpoint.
type orgState struct {
	r      *compact.Range
	signed uint64
	// published is the size of the last checkpoint published to the
	// org's witnesses; below signed after a failed publication, which
	// checkpointAll retries.
	published uint64
}

// Writer appends events to the orgs' logs as the ingestor's sequencer
// (Serve, Seal, Stored). Serve it once at a time; Checkpoint is safe for
// concurrent use while it serves.
type Writer struct {
	cfg    Config
	js     jetstream.JetStream
	store  Store
	signer *tlog.Signer
	log    *zap.Logger

	mu   sync.Mutex // guards orgs, known and pubPause
	orgs map[string]*orgState
	// known holds, for each org whose subjects this writer loaded, the
	// subjects with a salt in the store (see subjectSet); nil for an org
	// with more than maxKnownSubjects, whose subjects are always looked
	// up. Dropped with the orgs' states.
	known map[string]*subjectSet
	seed  maphash.Seed
	// pubPause: after a failed publication, none is tried before this
	// time, so that a bus refusing them never slows the log down.
	pubPause time.Time
	salts    map[treestore.Key][]byte // cache, writer goroutine only
	// uncached are subjects whose erasure this writer logged: their salt
	// is read from the store every time, so a salt the erasure deletes
	// is never used again. Writer goroutine only.
	uncached map[treestore.Key]bool
	lease    *lease
	seal     sealState // sealing mode (Serve, Seal)
}

// New returns a Writer. js holds the lease and publishes checkpoints to
// the witnesses.
func New(js jetstream.JetStream, store Store, signer *tlog.Signer, cfg Config) (*Writer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("logwriter: %w", err)
	}
	if js == nil || store == nil || signer == nil {
		return nil, errors.New("logwriter: nil dependency")
	}
	return &Writer{cfg: cfg, js: js, store: store, signer: signer, log: cfg.Logger,
		orgs: map[string]*orgState{}, known: map[string]*subjectSet{}, seed: maphash.MakeSeed(),
		salts: map[treestore.Key][]byte{}, uncached: map[treestore.Key]bool{}}, nil
}

// logged is an event to append (not modified), its canonical bytes when
// known (Entry.Raw) and the stream sequence of its message.
type logged struct {
	ev   *schemas.Event
	raw  []byte
	sseq uint64
}

// dropOrgs forgets the orgs' states: they are loaded from the store again
// when next needed.
func (w *Writer) dropOrgs() {
	w.mu.Lock()
	w.orgs = map[string]*orgState{}
	w.known = map[string]*subjectSet{}
	w.mu.Unlock()
}

// appendLeaves appends the events of evs to their orgs' trees, in order,
// and stores the new salts and then the new nodes: one INSERT of runs,
// keyed (Run.Keyed) when the events are stored without their log index.
// It returns the log index of each of evs. lookup is the time the caller
// spent before, for the debug log. On error the in-memory state is
// dropped and rebuilt from the store by the next attempt.
func (w *Writer) appendLeaves(ctx context.Context, evs []logged, keyed bool, lookup time.Duration) (idx []uint64, err error) {
	defer func() {
		if err != nil {
			w.dropOrgs()
		}
	}()
	// Time spent in each step, for the debug log.
	var steps [6]time.Duration
	steps[0] = lookup
	mark := time.Now()
	step := func(i int) {
		now := time.Now()
		steps[i] = now.Sub(mark)
		mark = now
	}
	// Org states, loaded from the store when first needed (all orgs new
	// to this writer in one go).
	bo := orgsOf(evs)
	if err := w.loadOrgNames(ctx, bo.names); err != nil {
		return nil, err
	}
	step(1)
	next := make([]*compact.Range, len(bo.names))
	w.mu.Lock()
	for j, org := range bo.names {
		st := w.orgs[org]
		next[j], err = tlog.NewRange(st.r.Begin(), st.r.End(), cloneHashes(st.r.Hashes()))
		if err != nil {
			w.mu.Unlock()
			return nil, err
		}
	}
	w.mu.Unlock()
	keys, newSalts, err := w.saltsFor(ctx, evs, bo)
	if err != nil {
		return nil, err
	}
	step(2)
	// The new salts are stored while the leaves are computed; the runs,
	// whose leaves commit to them, are written only once they are.
	saltsStored := make(chan error, 1)
	go func() { saltsStored <- w.store.PutSalts(ctx, newSalts) }()
	leaves, err := hashLeaves(evs, bo, keys)
	step(3)
	if serr := <-saltsStored; err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	step(4)
	// The new nodes, one run per org and level.
	var runs treestore.Runs
	for j, org := range bo.names {
		runs.Expect(org, bo.count[j])
	}
	idx = make([]uint64, len(evs))
	for i := range evs {
		e := &evs[i]
		r := next[bo.of[i]]
		idx[i] = r.End()
		err = r.Append(leaves[i][:], func(id compact.NodeID, h []byte) {
			runs.Add(e.ev.OrgID, id, h, e.ev.ID, e.sseq)
		})
		if err != nil {
			return nil, err
		}
	}
	w.addKnown(newSalts)
	for _, s := range newSalts {
		if k := (treestore.Key{Org: s.Org, EventID: s.Subject}); !w.uncached[k] {
			w.salts[ownKey(k)] = s.Salt
		}
	}
	if !w.lease.valid() {
		return nil, ErrLeaseLost
	}
	list := runs.List()
	for i := range list {
		list[i].Keyed = keyed
	}
	if err := w.store.WriteRuns(ctx, token(list), list); err != nil {
		return nil, err
	}
	step(5)
	w.log.Debug("batch written", zap.Int("events", len(evs)), zap.Int("orgs", len(next)), zap.Int("new_salts", len(newSalts)),
		zap.Int("nodes", runs.Nodes()), zap.Int("runs", len(runs.List())), zap.Durations("logged,orgs,salts,hash,put_salts_wait,tree_write_runs", steps[:]))
	w.forgetErased(evs)
	w.mu.Lock()
	for j, r := range next {
		w.orgs[bo.names[j]].r = r
	}
	w.mu.Unlock()
	return idx, nil
}

func cloneHashes(hs [][]byte) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = bytes.Clone(h)
	}
	return out
}

// token is the insert deduplication token of a set of runs: a retry of
// the same runs is stored once.
func token(runs []treestore.Run) string {
	h := sha256.New()
	var b []byte
	for _, r := range runs {
		b = append(b[:0], r.Org...)
		b = append(b, 0, r.Level)
		b = binary.BigEndian.AppendUint64(b, r.First)
		b = binary.BigEndian.AppendUint64(b, uint64(len(r.Hashes)))
		if r.Keyed {
			b = append(b, 1)
		}
		h.Write(b)
		h.Write(r.Hashes)
		b = b[:0]
		for _, id := range r.EventIDs {
			b = append(b, id...)
			b = append(b, 0)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// batchOrgs are the orgs of a batch's events, in the order they first
// come, the position among them of each event's org, and the number of
// events of each.
type batchOrgs struct {
	names []string
	of    []int32
	count []int
	pos   map[string]int32
}

func orgsOf(evs []logged) batchOrgs {
	bo := batchOrgs{of: make([]int32, len(evs)), pos: map[string]int32{}}
	for i := range evs {
		org := evs[i].ev.OrgID
		j, ok := int32(0), false
		if i > 0 && org == evs[i-1].ev.OrgID {
			j, ok = bo.of[i-1], true
		} else {
			j, ok = bo.pos[org]
		}
		if !ok {
			j = int32(len(bo.names))
			bo.pos[org] = j
			bo.names = append(bo.names, org)
			bo.count = append(bo.count, 0)
		}
		bo.of[i] = j
		bo.count[j]++
	}
	return bo
}

// loadOrgNames loads the state of the orgs this writer does not hold.
func (w *Writer) loadOrgNames(ctx context.Context, orgs []string) error {
	var missing []string
	seen := map[string]bool{}
	w.mu.Lock()
	for _, org := range orgs {
		if _, ok := w.orgs[org]; !ok && !seen[org] {
			seen[org] = true
			// The writer keeps it: a copy of its own rather than a slice
			// of a decoded message.
			missing = append(missing, strings.Clone(org))
		}
	}
	w.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	trees, err := w.store.Trees(ctx, missing)
	if err != nil {
		return err
	}
	loaded := make(map[string]*orgState, len(trees))
	for org, t := range trees {
		r, err := tlog.NewRange(0, t.Size, t.Range)
		if err != nil {
			return fmt.Errorf("logwriter: org %s: %w", org, err)
		}
		loaded[org] = &orgState{r: r, signed: t.Signed}
	}
	w.mu.Lock()
	for org, st := range loaded {
		w.orgs[org] = st
	}
	w.mu.Unlock()
	return nil
}

// forgetErased stops caching the salt of each subject whose erasure
// record (schemas.ActionAuditSubjectErased) is among evs, logged now or
// before: events after the record read the salt from the store, where the
// erasure deletes it (a new salt is then made for the subject's later
// events). A forged record costs a store read per batch, nothing more.
func (w *Writer) forgetErased(evs []logged) {
	for _, e := range evs {
		if e.ev.Action != schemas.ActionAuditSubjectErased {
			continue
		}
		for _, t := range e.ev.Targets {
			if t.Type == schemas.TargetTypeSubject {
				k := treestore.Key{Org: e.ev.OrgID, EventID: t.ID}
				delete(w.salts, k)
				w.uncached[ownKey(k)] = true
			}
		}
	}
}

// saltsFor returns the key of every subject of evs, by org (as bo numbers
// them) and subject, creating the salts of those that have none, and the
// salts created. A subject neither in the cache nor known to the org's
// subject set has no salt: only the writer holding the lease creates
// salts, and the set was loaded from the store after it took the lease.
// The others are looked up.
func (w *Writer) saltsFor(ctx context.Context, evs []logged, bo batchOrgs) ([]map[string]*tlog.SubjectKey, []treestore.Salt, error) {
	keys := make([]map[string]*tlog.SubjectKey, len(bo.names))
	for j := range keys {
		keys[j] = map[string]*tlog.SubjectKey{}
	}
	// Subjects not in the cache: nil in keys until resolved.
	var missing []treestore.Key
	for i := range evs {
		e, m := evs[i].ev, keys[bo.of[i]]
		forSubjects(e, func(s string) {
			if _, ok := m[s]; ok {
				return
			}
			k := treestore.Key{Org: e.OrgID, EventID: s}
			if salt, ok := w.salts[k]; ok && !w.uncached[k] {
				m[s] = tlog.NewBatchSubjectKey(salt)
			} else {
				m[s] = nil
				missing = append(missing, k)
			}
		})
	}
	if len(missing) == 0 {
		return keys, nil, nil
	}
	if err := w.loadKnown(ctx, missing); err != nil {
		return nil, nil, err
	}
	var lookup, fresh []treestore.Key
	w.mu.Lock()
	for _, k := range missing {
		if set := w.known[k.Org]; set == nil || set.has(maphash.String(w.seed, k.EventID)) {
			lookup = append(lookup, k)
		} else {
			fresh = append(fresh, k)
		}
	}
	w.mu.Unlock()
	found, err := w.store.Salts(ctx, lookup)
	if err != nil {
		return nil, nil, err
	}
	if len(w.salts) > 1_000_000 {
		clear(w.salts)
	}
	for _, k := range lookup {
		salt, ok := found[k]
		if !ok {
			fresh = append(fresh, k)
			continue
		}
		if !w.uncached[k] {
			w.salts[ownKey(k)] = salt
		}
		keys[bo.pos[k.Org]][k.EventID] = tlog.NewBatchSubjectKey(salt)
	}
	if len(fresh) == 0 {
		return keys, nil, nil
	}
	// The new salts, read from the system's random source in one go.
	random := make([]byte, len(fresh)*tlog.SaltSize)
	if _, err := rand.Read(random); err != nil {
		return nil, nil, err
	}
	created := make([]treestore.Salt, len(fresh))
	for i, k := range fresh {
		salt := random[i*tlog.SaltSize : (i+1)*tlog.SaltSize : (i+1)*tlog.SaltSize]
		created[i] = treestore.Salt{Org: k.Org, Subject: k.EventID, Salt: salt}
		keys[bo.pos[k.Org]][k.EventID] = tlog.NewBatchSubjectKey(salt)
	}
	return keys, created, nil
}

// hashLeaves returns the leaf hashes of evs, their personal fields
// committed under the subjects' keys. A large batch of several orgs is
// split between the CPUs by org: a subject (and its key, not safe for
// concurrent use) belongs to one org, so no key is used by two goroutines.
func hashLeaves(evs []logged, bo batchOrgs, keys []map[string]*tlog.SubjectKey) ([][sha256.Size]byte, error) {
	leaves := make([][sha256.Size]byte, len(evs))
	hash := func(at []int) error {
		var (
			h   tlog.Hasher
			cur map[string]*tlog.SubjectKey // the keys of the event's org
		)
		key := func(subject string) *tlog.SubjectKey { return cur[subject] }
		for _, i := range at {
			e := evs[i].ev
			cur = keys[bo.of[i]]
			leaf, err := h.LeafFrom(e, evs[i].raw, key)
			if err != nil {
				return fmt.Errorf("logwriter: event %s: %w", e.ID, err)
			}
			leaves[i] = leaf
		}
		return nil
	}
	parts := splitByOrg(bo, min(runtime.GOMAXPROCS(0), len(evs)/minLeavesPerWorker))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for p := range parts[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p+1] = hash(parts[p+1])
		}()
	}
	errs[0] = hash(parts[0])
	wg.Wait()
	return leaves, errors.Join(errs...)
}

// splitByOrg returns the positions of the events of bo in at most n parts
// (at least one), each org's events in one part and in order, the orgs
// placed largest first into the part with the fewest events.
func splitByOrg(bo batchOrgs, n int) [][]int {
	all := make([]int, len(bo.of))
	for i := range all {
		all[i] = i
	}
	if n < 2 || len(bo.names) < 2 {
		return [][]int{all}
	}
	orgs := make([]int, len(bo.names))
	for j := range orgs {
		orgs[j] = j
	}
	slices.SortFunc(orgs, func(a, b int) int { return cmp.Or(bo.count[b]-bo.count[a], strings.Compare(bo.names[a], bo.names[b])) })
	n = min(n, len(orgs))
	sizes := make([]int, n)
	part := make([]int, len(orgs))
	for _, j := range orgs {
		p := 0
		for q := range sizes {
			if sizes[q] < sizes[p] {
				p = q
			}
		}
		part[j] = p
		sizes[p] += bo.count[j]
	}
	parts := make([][]int, n)
	for p := range parts {
		parts[p] = make([]int, 0, sizes[p])
	}
	for i, j := range bo.of {
		p := part[j]
		parts[p] = append(parts[p], i)
	}
	return parts
}

// minLeavesPerWorker is the fewest events a hashing goroutine is given.
const minLeavesPerWorker = 512

// maxKnownSubjects bounds an org's subject set (8 bytes a subject): the
// subjects of a larger org are looked up in the store.
const maxKnownSubjects = 1 << 23

// subjectSet is the set of an org's subjects with a salt, as 64-bit hashes
// of their ids under the writer's seed: those loaded from the store
// sorted, those created since in a map. A hash in the set may be another
// subject's (then the store answers that it has no salt); a subject with a
// salt is always in it.
type subjectSet struct {
	sorted []uint64
	added  map[uint64]struct{}
}

func (s *subjectSet) has(h uint64) bool {
	if _, ok := s.added[h]; ok {
		return true
	}
	_, ok := slices.BinarySearch(s.sorted, h)
	return ok
}

func (s *subjectSet) add(h uint64) {
	s.added[h] = struct{}{}
	if len(s.added) < 1<<16 {
		return
	}
	for h := range s.added {
		s.sorted = append(s.sorted, h)
	}
	slices.Sort(s.sorted)
	s.sorted = slices.Compact(s.sorted)
	clear(s.added)
}

// loadKnown loads the subject sets of the orgs of keys that have none, in
// one query.
func (w *Writer) loadKnown(ctx context.Context, keys []treestore.Key) error {
	var orgs []string
	sets := map[string]*subjectSet{}
	w.mu.Lock()
	for _, k := range keys {
		if _, ok := w.known[k.Org]; ok {
			continue
		}
		if _, ok := sets[k.Org]; !ok {
			org := strings.Clone(k.Org)
			orgs = append(orgs, org)
			sets[org] = &subjectSet{added: map[uint64]struct{}{}}
		}
	}
	w.mu.Unlock()
	if len(orgs) == 0 {
		return nil
	}
	err := w.store.Subjects(ctx, orgs, func(org, subject string) {
		if s := sets[org]; s != nil {
			s.sorted = append(s.sorted, maphash.String(w.seed, subject))
			if len(s.sorted) > maxKnownSubjects {
				sets[org] = nil
			}
		}
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for org, s := range sets {
		if s != nil {
			slices.Sort(s.sorted)
			s.sorted = slices.Compact(s.sorted)
		}
		w.known[org] = s
	}
	return nil
}

// addKnown adds the subjects of stored salts to their orgs' sets.
func (w *Writer) addKnown(salts []treestore.Salt) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range salts {
		if set := w.known[s.Org]; set != nil {
			set.add(maphash.String(w.seed, s.Subject))
		}
	}
}

// ownKey returns k with copies of its strings: a key the writer keeps
// (its caches) does not hold on to the decoded message its strings are
// slices of.
func ownKey(k treestore.Key) treestore.Key {
	return treestore.Key{Org: strings.Clone(k.Org), EventID: strings.Clone(k.EventID)}
}

// forSubjects calls f with each subject of e whose salt committing e
// needs, as tlog.Subjects lists them (f may see an id more than once).
func forSubjects(e *schemas.Event, f func(subject string)) {
	a := &e.Actor
	if a.Name != "" || a.Email != "" || a.IP != "" || a.UserAgent != "" {
		f(a.ID)
	}
	for i := range e.Targets {
		if e.Targets[i].Name != "" {
			f(e.Targets[i].ID)
		}
	}
}

// checkpointBatch bounds the orgs whose stored roots are read, and whose
// checkpoints are stored, in one query.
const checkpointBatch = 1000

// checkpointAll signs a checkpoint for every org whose tree grew, and
// publishes again a signed checkpoint whose publication failed. Per group
// of orgs, one query reads their stored roots and one INSERT stores their
// checkpoints. A group that fails is retried org by org, so that one org's
// inconsistent tree does not hold up the others' checkpoints.
func (w *Writer) checkpointAll(ctx context.Context) {
	type grown struct {
		org  string
		st   *orgState
		size uint64
		root []byte
	}
	var (
		all       []grown
		republish []string
	)
	w.mu.Lock()
	for org, st := range w.orgs {
		if size := st.r.End(); size <= st.signed {
			if st.published < st.signed {
				republish = append(republish, org)
			}
		} else {
			root, err := st.r.GetRootHash(nil)
			if err != nil {
				w.log.Error("checkpoint not signed", zap.String("org_id", org), zap.Error(err))
				continue
			}
			all = append(all, grown{org: org, st: st, size: size, root: root})
		}
	}
	w.mu.Unlock()
	for _, org := range republish {
		if _, err := w.Checkpoint(ctx, org); err != nil && ctx.Err() == nil {
			w.log.Error("checkpoint not published", zap.String("org_id", org), zap.Error(err))
		}
	}
	for len(all) > 0 && ctx.Err() == nil {
		t0 := time.Now()
		group := all[:min(len(all), checkpointBatch)]
		all = all[len(group):]
		sizes := make(map[string]uint64, len(group))
		for _, g := range group {
			sizes[g.org] = g.size
		}
		stored, err := w.store.Roots(ctx, sizes)
		var cs []treestore.StoredCheckpoint
		if err == nil {
			now := time.Now().UTC()
			for _, g := range group {
				if !bytes.Equal(stored[g.org], g.root) {
					w.log.Error("checkpoint not signed", zap.String("org_id", g.org),
						zap.Error(fmt.Errorf("logwriter: the stored tree of size %d does not rebuild the writer's root", g.size)))
					continue
				}
				msg, serr := w.signer.Sign(tlog.Origin(w.cfg.Deployment, g.org), g.size, g.root)
				if serr != nil {
					err = serr
					break
				}
				cs = append(cs, treestore.StoredCheckpoint{Org: g.org, Size: g.size, Root: g.root, Note: msg, KeyHash: w.signer.KeyHash(), SignedAt: now})
			}
		}
		if err == nil {
			err = w.store.PutCheckpoints(ctx, cs)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("signing a group of checkpoints failed; signing them one by one", zap.Int("orgs", len(group)), zap.Error(err))
			for _, g := range group {
				if _, err := w.Checkpoint(ctx, g.org); err != nil && ctx.Err() == nil {
					w.log.Error("checkpoint not signed", zap.String("org_id", g.org), zap.Error(err))
				}
			}
			continue
		}
		sts := make([]*orgState, len(cs))
		w.mu.Lock()
		for i, c := range cs {
			if st := w.orgs[c.Org]; st != nil && st.signed < c.Size {
				st.signed = c.Size
			}
			sts[i] = w.orgs[c.Org]
		}
		w.mu.Unlock()
		w.log.Debug("checkpoints signed", zap.Int("orgs", len(cs)), zap.Duration("took", time.Since(t0)))
		for i, c := range cs {
			if sts[i] != nil {
				w.publish(ctx, sts[i], c)
			}
		}
	}
}

// ErrNotLoaded is returned by Checkpoint for an org this writer has not
// appended to since it started.
var ErrNotLoaded = errors.New("logwriter: org not loaded by this writer")

// Checkpoint signs and stores a checkpoint of the org's tree as this
// writer has persisted it, unless one of that size exists, and returns it.
// Before signing it checks that the hashes in the store rebuild the same
// root: a tree altered or forked in the store is never signed.
func (w *Writer) Checkpoint(ctx context.Context, org string) (treestore.StoredCheckpoint, error) {
	w.mu.Lock()
	st, ok := w.orgs[org]
	var (
		size uint64
		root []byte
		err  error
	)
	if ok {
		size = st.r.End()
		if size > 0 {
			root, err = st.r.GetRootHash(nil)
		}
	}
	signed := uint64(0)
	if ok {
		signed = st.signed
	}
	w.mu.Unlock()
	if !ok {
		return treestore.StoredCheckpoint{}, ErrNotLoaded
	}
	if err != nil {
		return treestore.StoredCheckpoint{}, err
	}
	if size == 0 {
		return treestore.StoredCheckpoint{}, errors.New("logwriter: empty log")
	}
	if size == signed {
		c, err := w.store.LatestCheckpoint(ctx, org)
		if err == nil {
			w.publish(ctx, st, c)
		}
		return c, err
	}
	stored, err := tlog.Root(ctx, w.store, org, size)
	if err != nil {
		return treestore.StoredCheckpoint{}, fmt.Errorf("logwriter: org %s: stored tree: %w", org, err)
	}
	if !bytes.Equal(stored, root) {
		return treestore.StoredCheckpoint{}, fmt.Errorf("logwriter: org %s: the stored tree of size %d does not rebuild the writer's root; not signed", org, size)
	}
	msg, err := w.signer.Sign(tlog.Origin(w.cfg.Deployment, org), size, root)
	if err != nil {
		return treestore.StoredCheckpoint{}, err
	}
	c := treestore.StoredCheckpoint{Org: org, Size: size, Root: root, Note: msg, KeyHash: w.signer.KeyHash(), SignedAt: time.Now().UTC()}
	if err := w.store.PutCheckpoint(ctx, c); err != nil {
		return treestore.StoredCheckpoint{}, err
	}
	w.mu.Lock()
	if st.signed < size {
		st.signed = size
	}
	w.mu.Unlock()
	w.log.Debug("checkpoint signed", zap.String("org_id", org), zap.Uint64("size", size))
	w.publish(ctx, st, c)
	return c, nil
}

// publish sends a stored checkpoint to the org's witnesses: one
// witness.Record on witness.Subject, deduplicated by the record's id. A
// failure is logged, no publication is tried for one checkpoint interval,
// and then checkpointAll publishes again; a checkpoint superseded
// meanwhile is covered by the newer one.
func (w *Writer) publish(ctx context.Context, st *orgState, c treestore.StoredCheckpoint) {
	w.mu.Lock()
	skip := st.published >= c.Size || time.Now().Before(w.pubPause)
	w.mu.Unlock()
	if skip {
		return
	}
	rec := witness.FromNote(c.Org, tlog.Origin(w.cfg.Deployment, c.Org), c.Size, c.KeyHash, c.SignedAt, c.Note)
	body, err := rec.Encode()
	if err != nil {
		w.log.Error("checkpoint record not published", zap.String("org_id", c.Org), zap.Error(err))
		return
	}
	msg := nats.NewMsg(witness.Subject(rec.OrgID, rec.KeyID))
	msg.Header.Set(jetstream.MsgIDHeader, rec.ID())
	msg.Data = body
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, msg); err != nil {
		if ctx.Err() == nil {
			w.mu.Lock()
			w.pubPause = time.Now().Add(w.cfg.CheckpointInterval)
			w.mu.Unlock()
			w.log.Warn("checkpoint not published to the witnesses; retrying at the next interval", zap.String("org_id", c.Org), zap.Uint64("size", c.Size), zap.Error(err))
		}
		return
	}
	w.mu.Lock()
	if st.published < c.Size {
		st.published = c.Size
	}
	w.mu.Unlock()
}
