package treestore

import "testing"

func TestAppendTSVEscapesAsTSV(t *testing.T) {
	for _, v := range []string{"", "org_1", "a\\b\tc\nd\re\x00f", "\\\\", "\u00e9\t"} {
		if got, want := string(appendTSV([]byte("x"), v)), "x"+tsv.Replace(v); got != want {
			t.Errorf("appendTSV(%q) = %q, want %q", v, got, want)
		}
	}
}
