// Package rolestest checks a binary's configuration the same way for
// every binary: the README documents it, and it reads only AUDIT_
// variables.
package rolestest

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/takumo/audit/platform/roles"
)

// CheckConfiguration asserts that the README at readme has a row for
// every variable a configuration made by newCfg reads, with binary among
// its binaries, and no row naming binary that it does not read; and that
// every such variable starts with AUDIT_ and its unprefixed name (NATS_URL
// for AUDIT_NATS_URL), set for other tools, changes nothing that is
// loaded.
func CheckConfiguration(t *testing.T, binary, readme string, newCfg func() any) {
	t.Helper()
	text, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	if err := roles.CheckDocumented(text, binary, newCfg()); err != nil {
		t.Error(err)
	}
	names, err := roles.Variables(newCfg())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "AUDIT_") {
			t.Errorf("%s is not an AUDIT_ variable", n)
		}
		t.Setenv(n, "")
		os.Unsetenv(n)
	}
	want := newCfg()
	if err := roles.Load(want); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		t.Setenv(strings.TrimPrefix(n, "AUDIT_"), "5")
	}
	got := newCfg()
	if err := roles.Load(got); err != nil {
		t.Fatalf("an unprefixed variable was read: %v", err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("an unprefixed variable was read:\nwithout: %s\nwith:    %s", show(want), show(got))
	}
}

func show(v any) string { return fmt.Sprintf("%+v", v) }
