// Package destinations stores SIEM destinations and their delivery status
// in NATS KV buckets, seals their credentials with secretbox, and owns each
// destination's durable JetStream consumer.
//
// A destination's consumer, on the AUDIT_FANOUT stream, is created with the
// destination, not when a forwarder first runs it, so delivery starts from
// the moment the destination exists. The fan-out stream is a bounded copy
// of the events: a destination that is failing or paused keeps its place
// in it, and once its backlog is older than the stream keeps, the oldest
// events are skipped — its lag shows it. Deleting the destination deletes
// its consumer.
//
// Keys are "<org_id>.<destination_id>" in both buckets.
package destinations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/transport"
)

// Buckets.
const (
	Bucket       = "AUDIT_SIEM_DESTINATIONS"
	StatusBucket = "AUDIT_SIEM_STATUS"
)

// Formats.
const (
	FormatSyslog = "syslog"
	FormatCEF    = "cef"
	FormatLEEF   = "leef"
	FormatHEC    = "hec"
	FormatOCSF   = "ocsf"
	FormatNDJSON = "ndjson"
)

// Transports.
const (
	TransportTCP   = "tcp"
	TransportTLS   = "tls"
	TransportUDP   = "udp"
	TransportHTTPS = "https"
)

// Errors.
var (
	ErrNotFound = errors.New("destinations: not found")
	ErrConflict = errors.New("destinations: changed concurrently; reload and retry")
)

// InvalidError lists every problem of a destination. Fields[i] names the
// request field at fault of Problems[i] (e.g. "address", "actions[2]",
// "credentials.token", "tls").
type InvalidError struct {
	Problems []string
	Fields   []string
}

func (e *InvalidError) Error() string {
	return "invalid destination: " + strings.Join(e.Problems, "; ")
}

// Destination is one SIEM destination of an org. Secrets are never part of
// it in clear: Sealed holds them encrypted, and Secrets() opens them.
type Destination struct {
	ID     string `json:"id"`
	OrgID  string `json:"org_id"`
	Name   string `json:"name"`
	Format string `json:"format"`
	// Transport is tcp, tls or udp for syslog, cef and leef (carried in
	// RFC 5424 messages), and https for hec, ocsf and ndjson.
	Transport string `json:"transport"`
	// Address is host:port for syslog transports and an https URL otherwise.
	Address string `json:"address"`
	// Framing is "octet-counting" (default) or "lf", for tcp and tls.
	Framing string `json:"framing,omitempty"`
	// Actions, when set, limits the destination to actions matching one of
	// these globs ("auth.*", "member.role_changed").
	Actions []string `json:"actions,omitempty"`
	Paused  bool     `json:"paused"`
	// TLS settings; the client key is sealed, not stored here.
	TLS transport.TLS `json:"tls"`
	// AuthHeader names the header carrying the generic HTTPS credential.
	AuthHeader string `json:"auth_header,omitempty"`
	// Hostname is the syslog HOSTNAME; HECIndex and HECSourceType fill the
	// HEC envelope.
	Hostname      string `json:"hostname,omitempty"`
	HECIndex      string `json:"hec_index,omitempty"`
	HECSourceType string `json:"hec_sourcetype,omitempty"`
	// Generation increases with every replay; a forwarder restarts the
	// destination's delivery when it changes.
	Generation int64      `json:"generation"`
	ReplayFrom *time.Time `json:"replay_from,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	// Sealed holds the sealed secrets by name (token, auth_value,
	// client_key_pem).
	Sealed map[string]string `json:"sealed,omitempty"`
	// Revision is the KV revision the destination was read at.
	Revision uint64 `json:"-"`
}

// Secrets are a destination's credentials in clear.
type Secrets struct {
	// Token is the Splunk HEC token.
	Token string `json:"token,omitempty"`
	// AuthValue is the generic HTTPS auth header's value.
	AuthValue string `json:"auth_value,omitempty"`
	// ClientKeyPEM is the TLS client certificate's key.
	ClientKeyPEM string `json:"client_key_pem,omitempty"`
}

func (s Secrets) named() map[string]string {
	return map[string]string{"token": s.Token, "auth_value": s.AuthValue, "client_key_pem": s.ClientKeyPEM}
}

// Key is the KV key of a destination.
func Key(orgID, id string) string { return orgID + "." + id }

// ConsumerName is the durable consumer of a destination. Each replay
// starts a new generation with a consumer of its own, created before the
// previous one is deleted, so the stream never stops holding the
// destination's backlog.
func ConsumerName(d Destination) string {
	name := "siem_" + d.OrgID + "_" + d.ID
	if d.Generation > 0 {
		name += "_g" + strconv.FormatInt(d.Generation, 10)
	}
	return name
}

// FilterSubject selects every event of the org.
func FilterSubject(orgID string) string { return schemas.SubjectPrefix + "." + orgID + ".>" }

// Matches reports whether the destination takes the action.
func (d Destination) Matches(action string) bool {
	if len(d.Actions) == 0 {
		return true
	}
	for _, g := range d.Actions {
		if ok, _ := path.Match(g, action); ok {
			return true
		}
	}
	return false
}

// Validate reports every problem at once, as *InvalidError. secrets are
// the credentials the destination will have.
func (d Destination) Validate(s Secrets) error {
	var p, fields []string
	add := func(field, f string, a ...any) {
		p, fields = append(p, fmt.Sprintf(f, a...)), append(fields, field)
	}
	if d.OrgID == "" {
		add("org_id", "org_id is required")
	}
	if d.Name == "" || len(d.Name) > 128 {
		add("name", "name must be 1-128 bytes")
	}
	stream := map[string]bool{TransportTCP: true, TransportTLS: true, TransportUDP: true}
	switch d.Format {
	case FormatSyslog, FormatCEF, FormatLEEF:
		if !stream[d.Transport] {
			add("transport", "format %s needs transport tcp, tls or udp, not %q", d.Format, d.Transport)
		}
	case FormatHEC, FormatOCSF, FormatNDJSON:
		if d.Transport != TransportHTTPS {
			add("transport", "format %s needs transport https, not %q", d.Format, d.Transport)
		}
	default:
		add("format", "format %q: want syslog, cef, leef, hec, ocsf or ndjson", d.Format)
	}
	if stream[d.Transport] {
		if _, port, err := net.SplitHostPort(d.Address); err != nil || port == "" {
			add("address", "address must be host:port for transport %s", d.Transport)
		}
	}
	if d.Transport == TransportHTTPS {
		u, err := url.Parse(d.Address)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			add("address", "address must be an https URL")
		}
	}
	switch d.Framing {
	case "", "octet-counting", "lf":
	default:
		add("framing", "framing %q: want octet-counting or lf", d.Framing)
	}
	if d.Framing != "" && d.Transport != TransportTCP && d.Transport != TransportTLS {
		add("framing", "framing applies to tcp and tls only")
	}
	if len(d.Actions) > 50 {
		add("actions", "at most 50 action filters")
	}
	for i, g := range d.Actions {
		if _, err := path.Match(g, ""); err != nil || g == "" || len(g) > 128 {
			add(fmt.Sprintf("actions[%d]", i), "action filter %q is not a valid glob", g)
		}
	}
	if d.Format == FormatHEC && s.Token == "" {
		add("credentials.token", "a HEC destination needs a token")
	}
	if (d.AuthHeader == "") != (s.AuthValue == "") {
		add("auth_header", "auth_header and auth_value go together")
	}
	if d.AuthHeader != "" && d.Format == FormatHEC {
		add("auth_header", "a HEC destination authenticates with its token, not auth_header")
	}
	if d.TLS.CertPEM != "" || s.ClientKeyPEM != "" {
		t := d.TLS
		t.KeyPEM = s.ClientKeyPEM
		if _, err := t.Config(); err != nil {
			add("tls", "tls: %v", err)
		}
	} else if d.TLS.CAPEM != "" {
		if _, err := d.TLS.Config(); err != nil {
			add("tls", "tls: %v", err)
		}
	}
	if len(p) > 0 {
		return &InvalidError{Problems: p, Fields: fields}
	}
	return nil
}

// Status is a destination's delivery status, written by the forwarder
// instance delivering it.
type Status struct {
	OrgID         string `json:"org_id"`
	DestinationID string `json:"destination_id"`
	// State is "active", "failing", "paused" or "starting".
	State string `json:"state"`
	// LastEventTime is occurred_at of the last delivered event;
	// LastDeliveredAt when that batch was accepted.
	LastEventTime   *time.Time `json:"last_event_time,omitempty"`
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
	// Lag is the number of the org's events not yet delivered.
	Lag uint64 `json:"lag"`
	// Delivered counts events delivered by the reporting instance since it
	// started.
	Delivered   uint64     `json:"delivered"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Instance    string     `json:"instance,omitempty"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

// Stream is the part of jetstream.JetStream the store uses.
type Stream interface {
	CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
	CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
	DeleteConsumer(ctx context.Context, stream, consumer string) error
	Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error)
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

var _ Stream = (jetstream.JetStream)(nil)

// Config tunes the store.
type Config struct {
	// Replicas of the buckets and consumers (1 single node, 3 in a cluster).
	Replicas int
	// AckWait of the consumers (default 30 s).
	AckWait time.Duration
	// MaxAckPending of the consumers (default 20,000); it must exceed the
	// forwarder's batch size.
	MaxAckPending int
}

// Store reads and writes destinations and status. It is safe for
// concurrent use and holds no resources beyond its JetStream handle.
type Store struct {
	cfg    Config
	js     Stream
	box    *secretbox.Box
	kv     jetstream.KeyValue
	status jetstream.KeyValue
	now    func() time.Time
}

// Open creates the buckets when missing.
func Open(ctx context.Context, js Stream, box *secretbox.Box, cfg Config) (*Store, error) {
	if box == nil {
		return nil, errors.New("destinations: a secretbox is required to seal credentials")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = 20_000
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket,
		Description: "Takumo Audit SIEM destinations", History: 8, Storage: jetstream.FileStorage, Replicas: cfg.Replicas})
	if err != nil {
		return nil, fmt.Errorf("destinations: bucket %s: %w", Bucket, err)
	}
	st, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: StatusBucket,
		Description: "Takumo Audit SIEM delivery status", History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas})
	if err != nil {
		return nil, fmt.Errorf("destinations: bucket %s: %w", StatusBucket, err)
	}
	return &Store{cfg: cfg, js: js, box: box, kv: kv, status: st, now: time.Now}, nil
}

func sealContext(orgID, id, name string) string { return "siem:" + orgID + ":" + id + ":" + name }

// Secrets opens the destination's sealed credentials.
func (s *Store) Secrets(d Destination) (Secrets, error) {
	var out Secrets
	for name, sealed := range d.Sealed {
		plain, err := s.box.Open(sealed, sealContext(d.OrgID, d.ID, name))
		if err != nil {
			return Secrets{}, fmt.Errorf("destinations: %s of %s: %w", name, d.ID, err)
		}
		switch name {
		case "token":
			out.Token = string(plain)
		case "auth_value":
			out.AuthValue = string(plain)
		case "client_key_pem":
			out.ClientKeyPEM = string(plain)
		}
	}
	return out, nil
}

func (s *Store) seal(d *Destination, sec Secrets) {
	d.Sealed = map[string]string{}
	for name, v := range sec.named() {
		if v != "" {
			d.Sealed[name] = s.box.Seal([]byte(v), sealContext(d.OrgID, d.ID, name))
		}
	}
}

// ConsumerConfig is the durable consumer of d, starting at start (nil:
// with the next event).
func (s *Store) ConsumerConfig(d Destination, start *time.Time) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable:       ConsumerName(d),
		Description:   "Takumo Audit SIEM destination " + d.OrgID + "/" + d.ID,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: s.cfg.MaxAckPending,
		FilterSubject: FilterSubject(d.OrgID),
		Replicas:      s.cfg.Replicas,
	}
	if start != nil {
		t := start.UTC()
		c.DeliverPolicy, c.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return c
}

// EnsureConsumer creates d's consumer if it does not exist, starting with
// the next event. An existing consumer keeps its position.
func (s *Store) EnsureConsumer(ctx context.Context, d Destination) (jetstream.Consumer, error) {
	c, err := s.js.Consumer(ctx, topology.FanoutStream, ConsumerName(d))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("destinations: consumer of %s: %w", d.ID, err)
	}
	c, err = s.js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, s.ConsumerConfig(d, d.ReplayFrom))
	if err != nil {
		return nil, fmt.Errorf("destinations: create consumer of %s: %w", d.ID, err)
	}
	return c, nil
}

// Create validates d, gives it an id, seals sec, creates its consumer and
// stores it.
func (s *Store) Create(ctx context.Context, d Destination, sec Secrets) (Destination, error) {
	if err := d.Validate(sec); err != nil {
		return Destination{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	d.ID = strings.ToLower(schemas.NewID())
	d.CreatedAt, d.UpdatedAt, d.Generation, d.ReplayFrom = now, now, 1, nil
	s.seal(&d, sec)
	if _, err := s.EnsureConsumer(ctx, d); err != nil {
		return Destination{}, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return Destination{}, err
	}
	rev, err := s.kv.Create(ctx, Key(d.OrgID, d.ID), b)
	if err != nil {
		_ = s.js.DeleteConsumer(ctx, topology.FanoutStream, ConsumerName(d))
		return Destination{}, fmt.Errorf("destinations: store %s: %w", d.ID, err)
	}
	d.Revision = rev
	return d, nil
}

// Get returns one destination, or ErrNotFound.
func (s *Store) Get(ctx context.Context, orgID, id string) (Destination, error) {
	if !validKeyToken(orgID) || !validKeyToken(id) {
		return Destination{}, ErrNotFound
	}
	e, err := s.kv.Get(ctx, Key(orgID, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Destination{}, ErrNotFound
	}
	if err != nil {
		return Destination{}, fmt.Errorf("destinations: get %s: %w", id, err)
	}
	return Decode(e)
}

// Decode reads a KV entry.
func Decode(e jetstream.KeyValueEntry) (Destination, error) {
	var d Destination
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return Destination{}, fmt.Errorf("destinations: entry %s: %w", e.Key(), err)
	}
	d.Revision = e.Revision()
	return d, nil
}

// List returns the org's destinations, oldest first.
func (s *Store) List(ctx context.Context, orgID string) ([]Destination, error) {
	if !validKeyToken(orgID) {
		return nil, nil
	}
	lister, err := s.kv.ListKeysFiltered(ctx, orgID+".*")
	if err != nil {
		return nil, fmt.Errorf("destinations: list: %w", err)
	}
	var out []Destination
	for k := range lister.Keys() {
		_, id, _ := strings.Cut(k, ".")
		d, err := s.Get(ctx, orgID, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	// ULIDs sort by creation time.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// Update stores d (read earlier with Get; its Revision guards against a
// concurrent change). sec, when not nil, replaces the credentials; fields
// of sec left empty keep their sealed value.
func (s *Store) Update(ctx context.Context, d Destination, sec *Secrets) (Destination, error) {
	cur, err := s.Secrets(d)
	if err != nil {
		return Destination{}, err
	}
	if sec != nil {
		if sec.Token != "" {
			cur.Token = sec.Token
		}
		if sec.AuthValue != "" {
			cur.AuthValue = sec.AuthValue
		}
		if sec.ClientKeyPEM != "" {
			cur.ClientKeyPEM = sec.ClientKeyPEM
		}
	}
	if d.AuthHeader == "" {
		cur.AuthValue = ""
	}
	if err := d.Validate(cur); err != nil {
		return Destination{}, err
	}
	s.seal(&d, cur)
	d.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	return s.put(ctx, d)
}

func (s *Store) put(ctx context.Context, d Destination) (Destination, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return Destination{}, err
	}
	rev, err := s.kv.Update(ctx, Key(d.OrgID, d.ID), b, d.Revision)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Destination{}, ErrConflict
		}
		return Destination{}, fmt.Errorf("destinations: update %s: %w", d.ID, err)
	}
	d.Revision = rev
	return d, nil
}

// SetPaused pauses or resumes delivery. A paused destination keeps its
// consumer, so its backlog stays in the stream and is delivered on resume.
func (s *Store) SetPaused(ctx context.Context, orgID, id string, paused bool) (Destination, error) {
	d, err := s.Get(ctx, orgID, id)
	if err != nil {
		return Destination{}, err
	}
	d.Paused = paused
	d.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	return s.put(ctx, d)
}

// Replay makes the destination deliver again every event of its org the
// fan-out stream still holds from the given time on: a new generation's
// consumer starts with DeliverByStartTime and forwarders restart delivery
// on it. It returns the oldest event time the stream holds; events older
// than that are no longer in it (it is a bounded copy, not the archive).
func (s *Store) Replay(ctx context.Context, orgID, id string, from time.Time) (Destination, time.Time, error) {
	d, err := s.Get(ctx, orgID, id)
	if err != nil {
		return Destination{}, time.Time{}, err
	}
	var oldest time.Time
	if st, err := s.js.Stream(ctx, topology.FanoutStream); err == nil {
		if info, err := st.Info(ctx); err == nil {
			oldest = info.State.FirstTime
		}
	}
	from = from.UTC()
	prev := d
	d.ReplayFrom = &from
	d.Generation++
	d.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	// The new generation's consumer exists before the old one goes, so the
	// destination always has a position in the stream.
	if _, err := s.js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, s.ConsumerConfig(d, &from)); err != nil {
		return Destination{}, time.Time{}, fmt.Errorf("destinations: replay %s: %w", id, err)
	}
	if d, err = s.put(ctx, d); err != nil {
		_ = s.js.DeleteConsumer(ctx, topology.FanoutStream, ConsumerName(d))
		return Destination{}, time.Time{}, err
	}
	if err := s.js.DeleteConsumer(ctx, topology.FanoutStream, ConsumerName(prev)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return d, oldest, fmt.Errorf("destinations: replay %s: delete the previous consumer: %w", id, err)
	}
	return d, oldest, nil
}

// Delete removes the destination, its consumer (releasing its backlog) and
// its status.
func (s *Store) Delete(ctx context.Context, orgID, id string) (Destination, error) {
	d, err := s.Get(ctx, orgID, id)
	if err != nil {
		return Destination{}, err
	}
	if err := s.kv.Delete(ctx, Key(orgID, id), jetstream.LastRevision(d.Revision)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Destination{}, ErrConflict
		}
		return Destination{}, fmt.Errorf("destinations: delete %s: %w", id, err)
	}
	if err := s.js.DeleteConsumer(ctx, topology.FanoutStream, ConsumerName(d)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return d, fmt.Errorf("destinations: delete consumer of %s: %w", id, err)
	}
	_ = s.status.Delete(ctx, Key(orgID, id))
	return d, nil
}

// Lag is the number of the destination's events not yet acknowledged,
// read from its consumer.
func (s *Store) Lag(ctx context.Context, d Destination) (uint64, error) {
	c, err := s.js.Consumer(ctx, topology.FanoutStream, ConsumerName(d))
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// PutStatus records a destination's status.
func (s *Store) PutStatus(ctx context.Context, st Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.status.Put(ctx, Key(st.OrgID, st.DestinationID), b)
	return err
}

// GetStatus reads a destination's last recorded status; ok is false when
// none was recorded yet.
func (s *Store) GetStatus(ctx context.Context, orgID, id string) (Status, bool, error) {
	e, err := s.status.Get(ctx, Key(orgID, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Status{}, false, nil
	}
	if err != nil {
		return Status{}, false, err
	}
	var st Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return Status{}, false, err
	}
	return st, true, nil
}

// Watch watches every destination of every org; see jetstream.KeyValue.WatchAll.
func (s *Store) Watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	return s.kv.WatchAll(ctx)
}

func validKeyToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
