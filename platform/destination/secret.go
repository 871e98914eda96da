package destination

import (
	"fmt"
	"io"
)

// Redacted is what a set Secret prints as, in every encoding.
const Redacted = "[redacted]"

// Secret is a credential held in clear in memory (a signing secret, a
// token, a private key). Printing it with fmt (any verb, %+v and %#v
// included, alone or inside a struct), encoding it as JSON or text, or
// logging it with zap shows Redacted (or "" when unset), never the value;
// only Reveal returns it. The value sits behind a pointer, so even
// printing an unexported field holding a Secret shows an address, not the
// value. The zero Secret is unset. A Secret is immutable and safe to copy
// and share.
type Secret struct{ v *string }

// NewSecret wraps s; an empty s gives the unset Secret.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{v: &s}
}

// Reveal returns the value, for the one place that uses it (a request
// header, a MAC key, sealing).
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsSet reports whether the Secret holds a value.
func (s Secret) IsSet() bool { return s.v != nil }

// String returns Redacted, or "" when unset.
func (s Secret) String() string {
	if s.v == nil {
		return ""
	}
	return Redacted
}

// GoString is String, so %#v redacts too.
func (s Secret) GoString() string { return s.String() }

// Format writes String whatever the verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalJSON encodes String.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText encodes String (encoding/xml, zap's reflection, map keys).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
