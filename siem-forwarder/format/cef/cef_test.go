package cef_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/takumo/audit/siem-forwarder/format/cef"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
)

// record is a CEF record as a receiver parses it.
type record struct {
	Header []string
	Ext    map[string]string
}

// parse splits the header on unescaped pipes and the extension on
// " key=" boundaries, then unescapes, independently of the encoder.
func parse(s string) (record, error) {
	var r record
	if !strings.HasPrefix(s, "CEF:") {
		return r, errors.New("no CEF: prefix")
	}
	var field strings.Builder
	i := 0
	for ; i < len(s) && len(r.Header) < 7; i++ {
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
	if len(r.Header) != 7 {
		return r, fmt.Errorf("header has %d fields", len(r.Header))
	}
	r.Ext = map[string]string{}
	ext := s[i:]
	// Find the unescaped '=' of each pair; the key is the word before it.
	var keys []int // positions of key starts
	var eqs []int
	for j := 0; j < len(ext); j++ {
		if ext[j] == '\\' {
			j++
			continue
		}
		if ext[j] == '=' {
			k := strings.LastIndexByte(ext[:j], ' ') + 1
			keys, eqs = append(keys, k), append(eqs, j)
		}
	}
	for n := range keys {
		end := len(ext)
		if n+1 < len(keys) {
			end = keys[n+1] - 1
		}
		raw := ext[eqs[n]+1 : end]
		var v strings.Builder
		for j := 0; j < len(raw); j++ {
			if raw[j] == '\\' && j+1 < len(raw) {
				j++
				switch raw[j] {
				case 'n':
					v.WriteByte('\n')
				case 'r':
					v.WriteByte('\r')
				default:
					v.WriteByte(raw[j])
				}
				continue
			}
			v.WriteByte(raw[j])
		}
		r.Ext[ext[keys[n]:eqs[n]]] = v.String()
	}
	return r, nil
}

func TestConformance(t *testing.T) {
	formattest.Run(t, formattest.Spec{
		Format: cef.New(cef.Options{}),
		Parse: func(rec []byte) (formattest.Fields, error) {
			r, err := parse(string(rec))
			if err != nil {
				return formattest.Fields{}, err
			}
			return formattest.Fields{ID: r.Ext["externalId"], OrgID: r.Ext["cs5"], Action: r.Header[4],
				ActorName: r.Ext["suser"], Reason: r.Ext["reason"], TargetName: r.Ext["cs6"], Details: r.Ext["cs4"]}, nil
		},
		MaxValue: cef.MaxValue,
		Details:  true,
		Specials: `\|=`,
	})
}

func TestGolden(t *testing.T) {
	formattest.Golden(t, cef.New(cef.Options{Vendor: "Acme", Product: "AuditLog", Version: "1.4.0"}), "cef",
		formattest.Sample(), formattest.Failure(), formattest.Minimal())
}

func TestHeaderEscaping(t *testing.T) {
	rec, err := cef.New(cef.Options{Vendor: `Ac|me\`, Product: "Audit\nLog", Version: "2|0"}).Append(nil, formattest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	r, err := parse(string(rec))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Header[:4]; got[1] != `Ac|me\` || got[2] != "Audit Log" || got[3] != "2|0" {
		t.Errorf("header = %q", got)
	}
	if r.Header[4] != "member.role_changed" || r.Header[5] != "member role changed" || r.Header[6] != "3" {
		t.Errorf("header = %q", r.Header)
	}
	if r.Ext["rt"] != "1780317296789" || r.Ext["act"] != "role_changed" || r.Ext["cat"] != "member" || r.Ext["duser"] != "Bob Example" {
		t.Errorf("extension = %v", r.Ext)
	}
}
