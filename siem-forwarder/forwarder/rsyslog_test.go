package forwarder_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/format/cef"
	"github.com/takumo/audit/siem-forwarder/format/leef"
	"github.com/takumo/audit/siem-forwarder/format/syslog"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

const rsyslogd = "/usr/sbin/rsyslogd"

// rsyslogConf receives RFC 5424 over TCP (imtcp, octet-counted framing),
// parses the structured data with mmpstrucdata and writes one JSON object
// per message with the header fields and structured data as rsyslog
// parsed them.
const rsyslogConf = `
global(workDirectory="%[1]s" maxMessageSize="64k")
module(load="imtcp")
module(load="mmpstrucdata")
template(name="parsed" type="list") {
	constant(value="{\"pri\":\"") property(name="pri" format="json")
	constant(value="\",\"version\":\"") property(name="protocol-version" format="json")
	constant(value="\",\"timestamp\":\"") property(name="timereported" dateFormat="rfc3339" format="json")
	constant(value="\",\"hostname\":\"") property(name="hostname" format="json")
	constant(value="\",\"appname\":\"") property(name="app-name" format="json")
	constant(value="\",\"procid\":\"") property(name="procid" format="json")
	constant(value="\",\"msgid\":\"") property(name="msgid" format="json")
	constant(value="\",\"sd\":") property(name="$!rfc5424-sd")
	constant(value=",\"msg\":\"") property(name="msg" format="json")
	constant(value="\"}\n")
}
ruleset(name="siem") {
	action(type="mmpstrucdata")
	action(type="omfile" file="%[1]s/out.jsonl" template="parsed")
}
input(type="imtcp" port="%[2]d" address="127.0.0.1" ruleset="siem")
`

// startRsyslog runs rsyslogd in the foreground with the test's config.
func startRsyslog(t *testing.T) (addr, out string) {
	t.Helper()
	if _, err := os.Stat(rsyslogd); err != nil {
		if os.Getenv("AUDIT_SKIP_RSYSLOG") != "" {
			t.Skip("rsyslogd not installed and AUDIT_SKIP_RSYSLOG is set")
		}
		t.Fatalf("rsyslogd not installed: run scripts/ensure-rsyslog.sh (make test does), or set AUDIT_SKIP_RSYSLOG=1 to skip this test")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, rsyslogConf, dir, port), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rsyslogd, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	logPath := filepath.Join(dir, "rsyslogd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("rsyslogd output:\n%s", b)
		}
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "rsyslogd to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, filepath.Join(dir, "out.jsonl")
}

type parsedLine struct {
	PRI, Version, Timestamp, Hostname, AppName, ProcID, MsgID, Msg string
	SD                                                             map[string]map[string]string
}

func readParsed(t *testing.T, path string) []parsedLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []parsedLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			continue // a line being written
		}
		s := func(k string) string { v, _ := raw[k].(string); return v }
		p := parsedLine{PRI: s("pri"), Version: s("version"), Timestamp: s("timestamp"), Hostname: s("hostname"),
			AppName: s("appname"), ProcID: s("procid"), MsgID: s("msgid"), Msg: s("msg"), SD: map[string]map[string]string{}}
		sd := raw["sd"]
		if str, ok := sd.(string); ok { // some versions render the subtree as a JSON string
			_ = json.Unmarshal([]byte(str), &sd)
		}
		if m, ok := sd.(map[string]any); ok {
			for id, params := range m {
				p.SD[id] = map[string]string{}
				if pm, ok := params.(map[string]any); ok {
					for k, v := range pm {
						p.SD[id][k], _ = v.(string)
					}
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// TestRsyslog sends events through the forwarder to a real rsyslogd, in
// the syslog (JSON), CEF and LEEF formats, and checks what rsyslog parsed.
func TestRsyslog(t *testing.T) {
	addr, out := startRsyslog(t)
	e := newEnv(t)
	for _, format := range []string{"syslog", "cef", "leef"} {
		createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_rs"}, Format: format, Transport: "tcp", Address: addr, Hostname: "audit.example.com"}, destinations.Secrets{})
	}
	e.run(t, forwarder.Config{})
	const n = 40
	evs := e.emit(t, "org_rs", n, func(i int, ev *schemas.Event) {
		switch i % 4 {
		case 1: // every special character of every format, and unicode
			ev.Actor.Name = `Zoë "q" [x] \ | = ^ ] end\`
			ev.Targets[0].Name = "日本語 🚀 a=b|c^d"
		case 2:
			ev.Action, ev.Category, ev.Outcome, ev.Reason = schemas.ActionAuthLoginFailed, schemas.CategoryAuth, schemas.OutcomeFailure, "bad_password \"]\\ x=y|z"
			ev.Targets, ev.Details = nil, map[string]any{"method": "password", "failure_reason": "bad_password"}
		case 3:
			ev.Actor.Name, ev.Actor.IP, ev.Context = "", "", schemas.Context{}
		}
	})
	byID := map[string]schemas.Event{}
	for _, ev := range evs {
		byID[ev.ID] = ev
	}
	var lines []parsedLine
	waitFor(t, 20*time.Second, "rsyslog to write every message", func() bool {
		lines = readParsed(t, out)
		return len(lines) >= 3*n
	})
	if len(lines) != 3*n {
		t.Fatalf("rsyslog wrote %d messages, want %d", len(lines), 3*n)
	}
	cefF := cef.New(cef.Options{})
	leefF, _ := leef.New(leef.Options{})
	sdValue := func(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }
	seen := map[string]int{}
	for _, l := range lines {
		sd := l.SD[syslog.DefaultSDID]
		ev, ok := byID[sd["id"]]
		if !ok {
			t.Fatalf("rsyslog parsed no known event id from the structured data: %+v", l)
		}
		wantPRI := "110"
		if ev.Outcome == schemas.OutcomeFailure {
			wantPRI = "108"
		}
		ts, err := time.Parse(time.RFC3339Nano, l.Timestamp)
		if l.PRI != wantPRI || l.Version != "1" || err != nil || !ts.Equal(ev.OccurredAt.Truncate(time.Millisecond)) ||
			l.Hostname != "audit.example.com" || l.AppName != "takumo-audit" || l.ProcID != "-" || l.MsgID != ev.Action {
			t.Errorf("header as parsed by rsyslog = %+v; event %s at %s", l, ev.Action, ev.OccurredAt)
		}
		want := map[string]string{"id": ev.ID, "org": ev.OrgID, "action": ev.Action, "outcome": ev.Outcome,
			"actor_id": ev.Actor.ID, "actor_name": sdValue(ev.Actor.Name), "reason": sdValue(ev.Reason), "actor_ip": ev.Actor.IP}
		if len(ev.Targets) > 0 {
			want["target_name"] = ev.Targets[0].Name
		}
		for k, v := range want {
			if sd[k] != v {
				t.Errorf("structured data %s = %q, want %q", k, sd[k], v)
			}
		}
		switch {
		case strings.HasPrefix(l.Msg, "CEF:"):
			seen["cef"]++
			wantMsg, _ := cefF.Append(nil, ev)
			if l.Msg != string(wantMsg) {
				t.Errorf("CEF message not intact:\ngot  %s\nwant %s", l.Msg, wantMsg)
			}
		case strings.HasPrefix(l.Msg, "LEEF:"):
			seen["leef"]++
			wantMsg, _ := leefF.Append(nil, ev)
			if l.Msg != string(wantMsg) {
				t.Errorf("LEEF message not intact:\ngot  %s\nwant %s", l.Msg, wantMsg)
			}
		default:
			seen["json"]++
			var got schemas.Event
			if err := json.Unmarshal([]byte(l.Msg), &got); err != nil || got.ID != ev.ID || got.Actor.Name != ev.Actor.Name || got.Reason != ev.Reason {
				t.Errorf("JSON message not intact: %v\n%s", err, l.Msg)
			}
		}
	}
	if seen["cef"] != n || seen["leef"] != n || seen["json"] != n {
		t.Errorf("messages per format = %v, want %d each", seen, n)
	}
}
