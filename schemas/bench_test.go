package schemas

import "testing"

func BenchmarkValidate(b *testing.B) {
	c := NewCatalog()
	e := validEvent()
	for b.Loop() {
		if err := c.Validate(&e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonical(b *testing.B) {
	e := validEvent()
	for b.Loop() {
		if _, err := Canonical(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data, err := Canonical(validEvent())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
