package forwarder

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/format/cef"
	"github.com/takumo/audit/siem-forwarder/format/hec"
	"github.com/takumo/audit/siem-forwarder/format/leef"
	"github.com/takumo/audit/siem-forwarder/format/ndjson"
	"github.com/takumo/audit/siem-forwarder/format/ocsf"
	"github.com/takumo/audit/siem-forwarder/format/syslog"
	"github.com/takumo/audit/siem-forwarder/transport/httpsend"
	"github.com/takumo/audit/siem-forwarder/transport/syslognet"
)

// Format encodes one event, or one signed checkpoint, as one record,
// without framing.
type Format interface {
	Name() string
	Append(b []byte, ev schemas.Event) ([]byte, error)
	AppendCheckpoint(b []byte, r witness.Record) ([]byte, error)
}

var (
	_ Format                = (*syslog.Format)(nil)
	_ Format                = (*hec.Format)(nil)
	_ Format                = (*ocsf.Format)(nil)
	_ Format                = (*ndjson.Format)(nil)
	_ syslog.CheckpointBody = (*cef.Format)(nil)
	_ syslog.CheckpointBody = (*leef.Format)(nil)
)

// Sender delivers a batch of records; nil means the receiver accepted it.
type Sender interface {
	Send(ctx context.Context, records [][]byte) error
	Close() error
}

var (
	_ Sender = (*syslognet.Sender)(nil)
	_ Sender = (*httpsend.Sender)(nil)
)

// BuildOptions are process-wide settings for building destinations.
type BuildOptions struct {
	// Hostname is the syslog HOSTNAME and HEC host when a destination sets
	// none.
	Hostname string
	// AllowHTTP lets https destinations use plain http:// (tests only).
	AllowHTTP bool
	// AllowCIDRs are the internal ranges destinations may reach
	// (AUDIT_SIEM_ALLOW_CIDRS). Every other internal address (loopback,
	// private, link-local, metadata...) is refused when connecting: see
	// netguard.SIEM.
	AllowCIDRs []netip.Prefix
	// SendTimeout bounds one batch (default 30 s).
	SendTimeout time.Duration
}

// Build returns the format and sender of a destination. CEF and LEEF go as
// the body of RFC 5424 messages. The sender does not connect until its
// first Send, and connects through the address guard of o; the caller
// closes it.
func Build(d destinations.Destination, sec destinations.Secrets, o BuildOptions) (Format, Sender, error) {
	host := d.Hostname
	if host == "" {
		host = o.Hostname
	}
	var f Format
	var err error
	switch d.Format {
	case destinations.FormatSyslog:
		f, err = syslog.New(syslog.Options{Hostname: host})
	case destinations.FormatCEF:
		f, err = syslog.New(syslog.Options{Hostname: host, Body: cef.New(cef.Options{}), BodyName: "cef"})
	case destinations.FormatLEEF:
		var l *leef.Format
		if l, err = leef.New(leef.Options{}); err == nil {
			f, err = syslog.New(syslog.Options{Hostname: host, Body: l, BodyName: "leef"})
		}
	case destinations.FormatHEC:
		f = hec.New(hec.Options{Host: host, Index: d.HECIndex, SourceType: d.HECSourceType})
	case destinations.FormatOCSF:
		f = ocsf.New(ocsf.Options{})
	case destinations.FormatNDJSON:
		f = ndjson.New()
	default:
		err = fmt.Errorf("unknown format %q", d.Format)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("forwarder: destination %s: %w", d.ID, err)
	}
	t := d.TLS
	t.KeyPEM = sec.ClientKeyPEM.Reveal()
	tlsCfg, err := t.Config()
	if err != nil {
		return nil, nil, fmt.Errorf("forwarder: destination %s: %w", d.ID, err)
	}
	dial := netguard.New(netguard.SIEM(o.AllowHTTP, o.AllowCIDRs)).DialFunc(10*time.Second, nil)
	var s Sender
	switch d.Transport {
	case destinations.TransportTCP, destinations.TransportTLS, destinations.TransportUDP:
		s, err = syslognet.New(syslognet.Config{Network: d.Transport, Address: d.Address,
			Framing: syslognet.Framing(d.Framing), TLS: tlsCfg, WriteTimeout: o.SendTimeout, Dial: dial})
	case destinations.TransportHTTPS:
		s, err = httpsend.New(httpsend.Config{URL: d.Address, HEC: d.Format == destinations.FormatHEC, Token: sec.Token.Reveal(),
			AuthHeader: d.AuthHeader, AuthValue: sec.AuthValue.Reveal(), TLS: tlsCfg, Timeout: o.SendTimeout, AllowHTTP: o.AllowHTTP, Dial: dial})
	default:
		err = fmt.Errorf("unknown transport %q", d.Transport)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("forwarder: destination %s: %w", d.ID, err)
	}
	return f, s, nil
}

// TestAction is the action of the event Test sends. It is not in the
// catalog and never enters the stream.
const TestAction = "audit.siem_destination_test"

// Test sends one synthetic event to the destination and reports whether
// the receiver accepted it. It is safe for concurrent use.
func Test(ctx context.Context, d destinations.Destination, sec destinations.Secrets, o BuildOptions) error {
	f, s, err := Build(d, sec, o)
	if err != nil {
		return err
	}
	defer s.Close()
	ev := schemas.Event{
		ID: schemas.NewID(), OrgID: d.OrgID, Action: TestAction, Category: schemas.CategoryAudit,
		OccurredAt: time.Now().UTC(), Actor: schemas.Actor{Type: schemas.ActorSystem, ID: "siem-forwarder"},
		Targets: []schemas.Target{{Type: "siem_destination", ID: d.ID, Name: d.Name}},
		Outcome: schemas.OutcomeSuccess, Details: map[string]any{"test": true},
	}
	rec, err := f.Append(nil, ev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return s.Send(ctx, [][]byte{rec})
}
