package syslog_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/syslog"
)

// message is an RFC 5424 message as a receiver parses it.
type message struct {
	PRI, Version, Timestamp, Hostname, AppName, ProcID, MsgID string
	SD                                                        map[string]map[string]string
	Msg                                                       string
}

// parse is a small RFC 5424 parser, independent of the encoder.
func parse(rec string) (message, error) {
	var m message
	if !strings.HasPrefix(rec, "<") {
		return m, errors.New("no PRI")
	}
	end := strings.IndexByte(rec, '>')
	if end < 2 {
		return m, errors.New("bad PRI")
	}
	m.PRI, rec = rec[1:end], rec[end+1:]
	fields := strings.SplitN(rec, " ", 7)
	if len(fields) < 7 {
		return m, fmt.Errorf("header has %d fields", len(fields))
	}
	m.Version, m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID = fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]
	rest := fields[6]
	m.SD = map[string]map[string]string{}
	if strings.HasPrefix(rest, "-") {
		rest = rest[1:]
	} else {
		for strings.HasPrefix(rest, "[") {
			i := 1
			j := strings.IndexAny(rest[i:], " ]")
			if j < 0 {
				return m, errors.New("unterminated SD-ID")
			}
			id := rest[i : i+j]
			params := map[string]string{}
			i += j
			for rest[i] == ' ' {
				i++
				eq := strings.IndexByte(rest[i:], '=')
				if eq < 0 || rest[i+eq+1] != '"' {
					return m, errors.New("bad SD-PARAM")
				}
				name := rest[i : i+eq]
				i += eq + 2
				var v strings.Builder
				for ; i < len(rest) && rest[i] != '"'; i++ {
					if rest[i] == '\\' && i+1 < len(rest) && strings.IndexByte(`"\]`, rest[i+1]) >= 0 {
						i++
					} else if rest[i] == ']' {
						return m, errors.New("unescaped ] in PARAM-VALUE")
					}
					v.WriteByte(rest[i])
				}
				if i >= len(rest) {
					return m, errors.New("unterminated PARAM-VALUE")
				}
				params[name] = v.String()
				i++
			}
			if rest[i] != ']' {
				return m, fmt.Errorf("SD element not closed at %q", rest[i:])
			}
			m.SD[id] = params
			rest = rest[i+1:]
		}
	}
	if rest != "" {
		if rest[0] != ' ' {
			return m, errors.New("no SP before MSG")
		}
		m.Msg = rest[1:]
	}
	return m, nil
}

func newFormat(t testing.TB, o syslog.Options) *syslog.Format {
	f, err := syslog.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConformance(t *testing.T) {
	formattest.Run(t, formattest.Spec{
		Format: newFormat(t, syslog.Options{Hostname: "audit.example.com"}),
		Parse: func(rec []byte) (formattest.Fields, error) {
			m, err := parse(string(rec))
			if err != nil {
				return formattest.Fields{}, err
			}
			sd := m.SD[syslog.DefaultSDID]
			var ev schemas.Event
			if err := json.Unmarshal([]byte(m.Msg), &ev); err != nil {
				return formattest.Fields{}, fmt.Errorf("MSG is not the event JSON: %w", err)
			}
			if ev.ID != sd["id"] || m.MsgID != ev.Action[:min(32, len(ev.Action))] {
				return formattest.Fields{}, errors.New("header, SD and MSG disagree")
			}
			return formattest.Fields{ID: sd["id"], OrgID: sd["org"], Action: sd["action"],
				ActorName: sd["actor_name"], Reason: sd["reason"], TargetName: sd["target_name"]}, nil
		},
		MaxValue: syslog.MaxParamValue,
		Carried: func(s string) string {
			return strings.Map(func(r rune) rune {
				if (r < 0x20 && r != '\t') || r == 0x7f {
					return ' '
				}
				return r
			}, s)
		},
		Specials: `"\]`,
	})
}

func TestGolden(t *testing.T) {
	formattest.Golden(t, newFormat(t, syslog.Options{Hostname: "audit.example.com"}), "syslog",
		formattest.Sample(), formattest.Failure(), formattest.Minimal())
}

func TestHeader(t *testing.T) {
	ev := formattest.Failure()
	ev.Action = "custom_resource_with_long_name.did_something_notable"
	rec, err := newFormat(t, syslog.Options{Hostname: "host name", AppName: strings.Repeat("a", 60), Facility: 10, SDID: "audit@55555"}).Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parse(string(rec))
	if err != nil {
		t.Fatal(err)
	}
	if m.PRI != "84" || m.Version != "1" || m.Timestamp != "2026-06-01T12:34:56.789Z" || m.Hostname != "host_name" ||
		len(m.AppName) != 48 || m.ProcID != "-" || m.MsgID != ev.Action[:32] {
		t.Errorf("header = %+v", m)
	}
	if m.SD["audit@55555"]["id"] != ev.ID {
		t.Errorf("SD = %v", m.SD)
	}
	for _, bad := range []syslog.Options{{SDID: "a b"}, {SDID: strings.Repeat("x", 33)}, {Facility: 24}} {
		if _, err := syslog.New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}
