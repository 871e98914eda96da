package leef_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/leef"
)

type record struct {
	Header []string
	Attrs  map[string]string
}

// parse reads a LEEF 2.0 record as QRadar does: seven header fields
// (pipes escaped with a backslash), then attributes split on the declared
// delimiter, each split at its first '='.
func parse(s string) (record, error) {
	var r record
	if !strings.HasPrefix(s, "LEEF:2.0|") {
		return r, errors.New("no LEEF:2.0 prefix")
	}
	var field strings.Builder
	i := 0
	for ; i < len(s) && len(r.Header) < 6; i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == '|') {
				i++
			}
			field.WriteByte(s[i])
		case '|':
			r.Header = append(r.Header, field.String())
			field.Reset()
		default:
			field.WriteByte(s[i])
		}
	}
	if len(r.Header) != 6 {
		return r, fmt.Errorf("header has %d fields", len(r.Header))
	}
	d := r.Header[5]
	if d == "x09" || d == "0x09" {
		d = "\t"
	}
	if len(d) != 1 {
		return r, fmt.Errorf("delimiter %q", d)
	}
	r.Attrs = map[string]string{}
	for _, a := range strings.Split(s[i:], d) {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return r, fmt.Errorf("attribute %q has no '='", a)
		}
		if _, dup := r.Attrs[k]; dup {
			return r, fmt.Errorf("attribute %s twice", k)
		}
		r.Attrs[k] = v
	}
	return r, nil
}

func fields(rec []byte) (formattest.Fields, error) {
	r, err := parse(string(rec))
	if err != nil {
		return formattest.Fields{}, err
	}
	return formattest.Fields{ID: r.Attrs["eventId"], OrgID: r.Attrs["tenantId"], Action: r.Header[4],
		ActorName: r.Attrs["usrName"], Reason: r.Attrs["reason"], TargetName: r.Attrs["targetName"], Details: r.Attrs["details"]}, nil
}

func TestConformance(t *testing.T) {
	for _, d := range []byte{'^', '\t'} {
		f, err := leef.New(leef.Options{Delimiter: d})
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("delimiter %q", d), func(t *testing.T) {
			formattest.Run(t, formattest.Spec{
				Format:   f,
				Parse:    fields,
				MaxValue: leef.MaxValue,
				Details:  true,
				Carried: func(s string) string {
					return strings.NewReplacer(string(d), " ", "\r", " ", "\n", " ").Replace(s)
				},
				Specials: "^\t|",
			})
		})
	}
}

func TestGolden(t *testing.T) {
	f, err := leef.New(leef.Options{Vendor: "Acme", Product: "AuditLog", Version: "1.4.0"})
	if err != nil {
		t.Fatal(err)
	}
	formattest.Golden(t, f, "leef", formattest.Sample(), formattest.Failure(), formattest.Minimal())
}

func TestOptions(t *testing.T) {
	for _, d := range []byte{'=', '|', '\\', ' ', '\n', 0x80} {
		if _, err := leef.New(leef.Options{Delimiter: d}); err == nil {
			t.Errorf("delimiter %q accepted", d)
		}
	}
	f, _ := leef.New(leef.Options{Vendor: "A|B"})
	rec, _ := f.Append(nil, formattest.Sample())
	r, err := parse(string(rec))
	if err != nil || r.Header[1] != "A|B" || r.Attrs["devTime"] != "2026-06-01T12:34:56.789Z" || r.Attrs["cat"] != "member" {
		t.Errorf("record %s parsed as %+v, %v", rec, r, err)
	}
}
