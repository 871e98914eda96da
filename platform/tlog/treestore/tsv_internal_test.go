package treestore

import "testing"

func TestTSVEscapes(t *testing.T) {
	for v, want := range map[string]string{
		"":                   "",
		"org_1":              "org_1",
		"a\\b\tc\nd\re\x00f": `a\\b\tc\nd\re\0f`,
		"\\\\":               `\\\\`,
		"\u00e9\t":           "\u00e9" + `\t`,
	} {
		if got := string(appendTSV([]byte("x"), v)); got != "x"+want {
			t.Errorf("appendTSV(%q) = %q, want %q", v, got, "x"+want)
		}
		if got := tsv(v); got != want {
			t.Errorf("tsv(%q) = %q, want %q", v, got, want)
		}
	}
}
