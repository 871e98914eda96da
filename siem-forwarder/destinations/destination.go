package destinations

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/transport"
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
// it in clear: Sealed holds them encrypted, and Store.Secrets opens them.
// Filters (in the embedded destination.Fields) limit the destination to
// matching actions (package actionfilter); the API calls them actions.
type Destination struct {
	destination.Fields
	Name   string `json:"name"`
	Format string `json:"format"`
	// Transport is tcp, tls or udp for syslog, cef and leef (carried in
	// RFC 5424 messages), and https for hec, ocsf and ndjson.
	Transport string `json:"transport"`
	// Address is host:port for syslog transports and an https URL otherwise.
	Address string `json:"address"`
	// Framing is "octet-counting" (default) or "lf", for tcp and tls.
	Framing string `json:"framing,omitempty"`
	Paused  bool   `json:"paused"`
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
	// Sealed holds the sealed secrets by name (token, auth_value,
	// client_key_pem).
	Sealed map[string]string `json:"sealed,omitempty"`
	// Revision is the KV revision the destination was read at.
	Revision uint64 `json:"-"`
}

// Secrets are a destination's credentials in clear, as destination.Secret:
// printing, encoding or logging them never shows a value.
type Secrets struct {
	// Token is the Splunk HEC token.
	Token destination.Secret `json:"token"`
	// AuthValue is the generic HTTPS auth header's value.
	AuthValue destination.Secret `json:"auth_value"`
	// ClientKeyPEM is the TLS client certificate's key.
	ClientKeyPEM destination.Secret `json:"client_key_pem"`
}

// Key is the KV key of a destination.
func Key(orgID, id string) string { return destination.Key(orgID, id) }

// ConsumerName is the durable consumer of a destination. Each replay
// starts a new generation with a consumer of its own, created before the
// previous one is deleted, so the stream never stops holding the
// destination's backlog. The "siem_" prefix is what the stream lag
// metrics (topology.LagCollector) sum under one label naming no tenant.
func ConsumerName(d Destination) string {
	name := "siem_" + d.OrgID + "_" + d.ID
	if d.Generation > 0 {
		name += "_g" + strconv.FormatInt(d.Generation, 10)
	}
	return name
}

// FilterSubject selects every event and every signed checkpoint of the
// org in AUDIT_FANOUT: "audit.*.<org_id>.>", which matches
// audit.events.<org_id>.<action> and audit.checkpoints.<org_id>.<key_id>
// (the only subjects the stream holds). One filter keeps the org in the
// consumer-create subject, which is what the bus permissions check.
func FilterSubject(orgID string) string { return "audit.*." + orgID + ".>" }

// legacyFilterSubject is the filter of consumers created before signed
// checkpoints were delivered (events only); EnsureConsumer widens it.
func legacyFilterSubject(orgID string) string { return schemas.SubjectPrefix + "." + orgID + ".>" }

// Decode reads a KV entry.
func Decode(e jetstream.KeyValueEntry) (Destination, error) {
	d, err := decode(e.Key(), e.Value())
	d.Revision = e.Revision()
	return d, err
}

func decode(key string, b []byte) (Destination, error) {
	var d Destination
	if err := json.Unmarshal(b, &d); err != nil {
		return Destination{}, fmt.Errorf("destinations: entry %s: %w", key, err)
	}
	if len(d.Filters) == 0 {
		// Records written before the common fields named the filters
		// "actions".
		var legacy struct {
			Actions []string `json:"actions"`
		}
		if json.Unmarshal(b, &legacy) == nil {
			d.Filters = legacy.Actions
		}
	}
	if d.Key() != key {
		// Not a record the API wrote (such as a JetStream reply a client
		// had the server store on the key): never delivered to.
		return Destination{}, fmt.Errorf("destinations: entry %s holds destination %q", key, d.Key())
	}
	return d, nil
}

// Validate reports every problem at once, as *InvalidError. secrets are
// the credentials the destination will have.
func (d Destination) Validate(s Secrets) error {
	var p, fields []string
	add := func(field, f string, a ...any) {
		p, fields = append(p, fmt.Sprintf(f, a...)), append(fields, field)
	}
	// The API calls the filters "actions".
	for _, pr := range d.Fields.Problems("actions") {
		add(pr.Field, "%s", pr.Message)
	}
	if d.Name == "" || len(d.Name) > 128 {
		add("name", "name must be 1-128 bytes")
	} else if err := schemas.CheckText(d.Name, 128); err != nil {
		add("name", "name %v", err)
	}
	// Free text that reaches audit events or the wire as a header is one
	// line of visible characters.
	for _, f := range []struct {
		field, v string
		limit    int
	}{{"address", d.Address, 2048}, {"hostname", d.Hostname, 255}, {"hec_index", d.HECIndex, 255},
		{"hec_sourcetype", d.HECSourceType, 255}, {"auth_header", d.AuthHeader, 255}} {
		if err := schemas.CheckText(f.v, f.limit); err != nil {
			add(f.field, "%s %v", f.field, err)
		}
	}
	if d.ID != "" && !destination.ValidID(d.ID) {
		add("id", "id must be 1-64 bytes of [A-Za-z0-9_-]")
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
	if d.Format == FormatHEC && !s.Token.IsSet() {
		add("credentials.token", "a HEC destination needs a token")
	}
	if (d.AuthHeader == "") != !s.AuthValue.IsSet() {
		add("auth_header", "auth_header and auth_value go together")
	}
	if d.AuthHeader != "" && d.Format == FormatHEC {
		add("auth_header", "a HEC destination authenticates with its token, not auth_header")
	}
	if d.TLS.CertPEM != "" || s.ClientKeyPEM.IsSet() {
		t := d.TLS
		t.KeyPEM = s.ClientKeyPEM.Reveal()
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
