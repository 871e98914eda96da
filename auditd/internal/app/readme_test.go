package app

import (
	"os"
	"reflect"
	"regexp"
	"testing"
)

// Every variable auditd reads is documented in the README's configuration
// table, and the table documents nothing auditd does not read.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(AUDIT_[A-Z_]+)` \\|").FindAllSubmatch(readme, -1) {
		documented[string(m[1])] = true
	}
	typ := reflect.TypeOf(Config{})
	read := map[string]bool{}
	for i := range typ.NumField() {
		name := "AUDIT_" + typ.Field(i).Tag.Get("envconfig")
		read[name] = true
		if !documented[name] {
			t.Errorf("%s is read by auditd but not in the README's configuration table", name)
		}
	}
	for name := range documented {
		if !read[name] {
			t.Errorf("%s is in the README's configuration table but auditd does not read it", name)
		}
	}
}
