package cli_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/takumo/audit/platform/auditapi"
)

// A command's -h shows where the token comes from, never the token.
func TestHelpDoesNotPrintTheToken(t *testing.T) {
	const tok = "eyJhbGciOiJIUzI1NiJ9.secret-token-value.sig"
	for _, args := range [][]string{{"events", "-h"}, {"tail", "-h"}, {"export", "-h"}, {"webhooks", "list", "-h"}, {"siem", "list", "-h"}, {"-h"}, {"help"}} {
		code, out, errOut := run(context.Background(), nil, tok, nil, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		if strings.Contains(out+errOut, "secret-token-value") {
			t.Errorf("%v printed the token:\n%s%s", args, out, errOut)
		}
		if args[0] != "-h" && args[0] != "help" && !strings.Contains(errOut, "AUDIT_TOKEN") {
			t.Errorf("%v: the help does not name AUDIT_TOKEN:\n%s", args, errOut)
		}
	}
}

// --url and --token work before the command as after it.
func TestGlobalFlags(t *testing.T) {
	s := newServer(t, nil)
	seed(s, "org_acme", 2)
	ctx := context.Background()
	tok := mint(t, "org_acme", auditapi.PermRead)
	// No AUDIT_URL or AUDIT_TOKEN: the flags alone reach the server.
	for _, args := range [][]string{
		{"--url", s.url, "--token", tok, "events", "-o", "json"},
		{"--url=" + s.url, "events", "--token", tok, "-o", "json"},
		{"events", "--url", s.url, "--token", tok, "-o", "json"},
	} {
		code, out, errOut := run(ctx, nil, "", nil, args...)
		if code != 0 || !strings.Contains(out, "ev_000") {
			t.Errorf("%v: exit %d\n%s\n%s", args, code, out, errOut)
		}
	}
	// A command's flag wins over the global one.
	if code, _, errOut := run(ctx, nil, "", nil, "--url", "http://127.0.0.1:1", "events", "--url", s.url, "--token", tok); code != 0 {
		t.Errorf("command flag over global flag: %d %s", code, errOut)
	}
	if code, _, errOut := run(ctx, nil, "", nil, "--nope", "events"); code != 2 || !strings.Contains(errOut, "nope") {
		t.Errorf("unknown global flag: %d %q", code, errOut)
	}
}

// The help lists every command and every subcommand the commands accept.
func TestHelpListsEveryCommand(t *testing.T) {
	ctx := context.Background()
	_, help, _ := run(ctx, nil, "", nil, "help")
	for _, cmd := range []string{"events", "tail", "export", "token", "webhooks", "siem", "help"} {
		if !strings.Contains(help, "auditctl "+cmd) {
			t.Errorf("help does not list %s", cmd)
		}
		if code, _, errOut := run(ctx, nil, "", nil, cmd, "-h"); code != 0 || strings.Contains(errOut, "unknown command") {
			t.Errorf("%s -h: exit %d %s", cmd, code, errOut)
		}
	}
	for _, group := range []string{"webhooks", "siem"} {
		_, _, sub := run(ctx, nil, "", nil, group, "-h")
		subs := regexp.MustCompile(`auditctl `+group+` ([a-z-]+)`).FindAllStringSubmatch(sub, -1)
		if len(subs) < 5 {
			t.Fatalf("%s -h lists %d commands:\n%s", group, len(subs), sub)
		}
		line := ""
		for _, l := range strings.Split(help, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "auditctl "+group+" ") {
				line = l
			}
		}
		listed := strings.Split(strings.Fields(line)[2], "|")
		for _, m := range subs {
			if !contains(listed, m[1]) {
				t.Errorf("help's %s line %q does not list %s", group, line, m[1])
			}
			// Every listed subcommand is one the command knows.
			if _, _, errOut := run(ctx, nil, "", nil, group, m[1], "-h"); strings.Contains(errOut, "unknown "+group+" command") {
				t.Errorf("%s %s: %s", group, m[1], errOut)
			}
		}
		if !contains(listed, "list") {
			t.Errorf("help's %s line: %q", group, line)
		}
	}
	if !strings.Contains(help, "rotate-secret") {
		t.Error("help does not list webhooks rotate-secret")
	}
}

// A token's lifetime must be positive: zero or negative is a usage error,
// never a silent default.
func TestTokenTTL(t *testing.T) {
	dir := t.TempDir()
	for _, ttl := range []string{"0s", "-5m"} {
		code, out, errOut := run(context.Background(), nil, "", map[string]string{"AUDIT_DATA_DIR": dir}, "token", "--org", "org_acme", "--perm", "audit.read", "--ttl", ttl)
		if code != 2 || out != "" || !strings.Contains(errOut, "lifetime must be positive") {
			t.Errorf("--ttl %s: exit %d, out %q, err %q", ttl, code, out, errOut)
		}
	}
	if code, _, errOut := run(context.Background(), nil, "", map[string]string{"AUDIT_DATA_DIR": dir}, "token", "--org", "org acme", "--perm", "audit.read"); code != 2 || !strings.Contains(errOut, "org id") {
		t.Errorf("bad org: %d %q", code, errOut)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
