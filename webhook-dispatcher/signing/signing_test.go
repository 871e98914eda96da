package signing_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// The Standard Webhooks specification's published test vector.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// independentSign follows the specification's text, without the package.
func independentSign(whsec, id string, ts int64, body string) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec, "whsec_"))
	if err != nil {
		panic(err)
	}
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestSpecTestVector(t *testing.T) {
	if got := independentSign(vecSecret, vecID, vecTS, vecBody); got != vecSig {
		t.Fatalf("independent implementation disagrees with the published vector: %s", got)
	}
	s, err := signing.ParseSecret(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := signing.Sign(vecID, time.Unix(vecTS, 0), []byte(vecBody), s)
	if err != nil {
		t.Fatal(err)
	}
	if got != vecSig {
		t.Fatalf("Sign = %s, want %s", got, vecSig)
	}
	h := http.Header{}
	h.Set("webhook-id", vecID)
	h.Set("webhook-timestamp", fmt.Sprint(vecTS))
	h.Set("webhook-signature", vecSig)
	if err := signing.Verify(h, []byte(vecBody), time.Unix(vecTS+10, 0), 0, s); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestSignSeveralSecrets(t *testing.T) {
	a, _ := signing.NewSecret()
	b, _ := signing.NewSecret()
	ts := time.Unix(1700000000, 0)
	got, err := signing.Sign("evt_1", ts, []byte("{}"), a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := independentSign(a.Reveal(), "evt_1", ts.Unix(), "{}") + " " + independentSign(b.Reveal(), "evt_1", ts.Unix(), "{}")
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	s, _ := signing.NewSecret()
	other, _ := signing.NewSecret()
	now := time.Unix(1700000000, 0)
	body := []byte(`{"type":"member.added"}`)
	headers := func(ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", "evt_9")
		h.Set("webhook-timestamp", fmt.Sprint(ts.Unix()))
		h.Set("webhook-signature", sig)
		return h
	}
	good := independentSign(s.Reveal(), "evt_9", now.Unix(), string(body))
	cases := []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"valid", headers(now, good), body, nil},
		{"valid among others", headers(now, "v1,AAAA "+good+" v1a,xyz"), body, nil},
		{"altered body", headers(now, good), []byte(`{"type":"member.removed"}`), signing.ErrNoMatch},
		{"other secret", headers(now, independentSign(other.Reveal(), "evt_9", now.Unix(), string(body))), body, signing.ErrNoMatch},
		{"too old", headers(now.Add(-6*time.Minute), independentSign(s.Reveal(), "evt_9", now.Add(-6*time.Minute).Unix(), string(body))), body, signing.ErrTimestampTooOld},
		{"too new", headers(now.Add(6*time.Minute), independentSign(s.Reveal(), "evt_9", now.Add(6*time.Minute).Unix(), string(body))), body, signing.ErrTimestampTooNew},
		{"missing", http.Header{}, body, signing.ErrMissingHeaders},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := signing.Verify(c.h, c.body, now, 0, s); !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestSecretIsRedacted(t *testing.T) {
	s, _ := signing.NewSecret()
	for _, txt := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v", s, s, s)} {
		if strings.Contains(txt, s.Reveal()[6:]) {
			t.Fatalf("secret printed: %s", txt)
		}
	}
	p, err := signing.ParseSecret(s.Reveal())
	if err != nil || string(p) != string(s) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := signing.ParseSecret("whsec_c2hvcnQ="); !errors.Is(err, signing.ErrBadSecret) {
		t.Fatalf("short secret accepted: %v", err)
	}
}

func TestSecretIsRedactedEverywhere(t *testing.T) {
	s, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b64 := strings.TrimPrefix(s.Reveal(), signing.SecretPrefix)
	j, _ := json.Marshal(struct{ S signing.Secret }{s})
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s %x %d %q", s, s, s, s, s, s, s), string(j)} {
		if strings.Contains(out, b64) || strings.Contains(out, fmt.Sprintf("%x", []byte(s))) || strings.Contains(out, fmt.Sprint([]byte(s))) {
			t.Fatalf("key shown: %s", out)
		}
	}
}
