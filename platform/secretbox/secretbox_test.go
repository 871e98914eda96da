package secretbox_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/takumo/audit/platform/secretbox"
)

func box(t *testing.T, spec string) *secretbox.Box {
	t.Helper()
	keys, err := secretbox.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secretbox.New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpenRotateTamper(t *testing.T) {
	k1, k2 := secretbox.NewKey(), secretbox.NewKey()
	old := box(t, "k1:"+k1)
	sealed := old.Seal([]byte("whsec_secret"), "webhook:org_1:ep_1")
	if strings.Contains(sealed, "whsec") {
		t.Fatal("plaintext visible in the sealed value")
	}
	// After rotation: seal with k2, still open k1 values.
	rotated := box(t, "k2:"+k2+", k1:"+k1)
	if got, err := rotated.Open(sealed, "webhook:org_1:ep_1"); err != nil || string(got) != "whsec_secret" {
		t.Fatalf("open after rotation: %q %v", got, err)
	}
	if s := rotated.Seal([]byte("x"), "c"); !strings.HasPrefix(s, "v1:k2:") {
		t.Fatalf("rotated box sealed with %s", s[:6])
	}
	if _, err := rotated.Open(sealed, "webhook:org_2:ep_1"); !errors.Is(err, secretbox.ErrCorrupt) {
		t.Fatalf("open in another context: %v", err)
	}
	if _, err := box(t, "k2:"+k2).Open(sealed, "webhook:org_1:ep_1"); !errors.Is(err, secretbox.ErrNoKey) {
		t.Fatalf("open without the key: %v", err)
	}
	tampered := sealed[:len(sealed)-2] + "AA"
	if _, err := old.Open(tampered, "webhook:org_1:ep_1"); !errors.Is(err, secretbox.ErrCorrupt) {
		t.Fatalf("open tampered: %v", err)
	}
}

func TestKeyConfigurationErrors(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("short"))
	for _, spec := range []string{"", "nocolon", "k1:!!!", "k1:" + short} {
		keys, err := secretbox.ParseKeys(spec)
		if err == nil {
			_, err = secretbox.New(keys...)
		}
		if err == nil {
			t.Errorf("%q accepted", spec)
		}
		if strings.Contains(spec, ":") && len(spec) > 4 && err != nil && strings.Contains(err.Error(), spec[3:]) {
			t.Errorf("error for %q reveals the key: %v", spec, err)
		}
	}
}
