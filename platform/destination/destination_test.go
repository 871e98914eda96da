package destination_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/takumo/audit/platform/destination"
)

type holder struct {
	Name   string
	Token  destination.Secret
	hidden destination.Secret
	Ptr    *destination.Secret
}

func TestSecretNeverShowsItsValue(t *testing.T) {
	const value = "hunter2-super-secret"
	s := destination.NewSecret(value)
	if s.Reveal() != value || !s.IsSet() {
		t.Fatal("Reveal")
	}
	h := holder{Name: "x", Token: s, hidden: s, Ptr: &s}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, []destination.Secret{s}), fmt.Sprintf(verb, map[string]destination.Secret{"k": s}))
	}
	out = append(out, fmt.Sprint(s), fmt.Sprintln(h), s.String())
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(j))
	var buf bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel)
	log := zap.New(core)
	log.Info("secret", zap.Any("any", s), zap.Stringer("stringer", s), zap.Reflect("reflect", h), zap.Any("holder", h), zap.Any("ptr", &s))
	_ = log.Sync()
	out = append(out, buf.String())
	for _, o := range out {
		if strings.Contains(o, value) || strings.Contains(o, fmt.Sprintf("%x", value)) {
			t.Fatalf("value shown: %s", o)
		}
	}
	if !strings.Contains(buf.String(), destination.Redacted) || !strings.Contains(string(j), destination.Redacted) {
		t.Fatalf("redaction marker missing: %s %s", buf.String(), j)
	}
	var unset destination.Secret
	if unset.IsSet() || unset.Reveal() != "" || fmt.Sprint(unset) != "" || destination.NewSecret("").IsSet() {
		t.Fatal("unset secret")
	}
}

func TestFieldsProblems(t *testing.T) {
	ok := destination.Fields{ID: "d1", OrgID: "org_1", Filters: []string{"member.*", "auth.login_failed"}}
	if p := ok.Problems("filters"); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
	if ok.Key() != "org_1.d1" || !ok.Matches("member.added") || ok.Matches("org.deleted") {
		t.Fatal("Key/Matches")
	}
	bad := destination.Fields{ID: "a.b", OrgID: "org.1", Filters: []string{"Member.*", "["}}
	var msgs []string
	for _, p := range bad.Problems("actions") {
		msgs = append(msgs, p.Field+": "+p.Message)
	}
	p := strings.Join(msgs, "; ")
	for _, want := range []string{"org_id: org_id", `id: id "a.b"`, `actions[0]: action filter "Member.*"`, `actions[1]: action filter "["`} {
		if !strings.Contains(p, want) {
			t.Errorf("problems %q lack %q", p, want)
		}
	}
}
