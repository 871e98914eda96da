package eventstore

import (
	"fmt"
	"regexp"
)

// identRe is the only form of database and cluster name the Store accepts.
var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// quoteIdent returns name quoted as a ClickHouse identifier. It is the one
// place a name enters SQL text: names are configuration, not user input,
// and anything but [A-Za-z_][A-Za-z0-9_]{0,63} is refused, so the quoting
// needs no escaping.
func quoteIdent(kind, name string) (string, error) {
	if !identRe.MatchString(name) {
		return "", fmt.Errorf("eventstore: %s name %q must match %s", kind, name, identRe)
	}
	return "`" + name + "`", nil
}

// quoteName returns name as a single-quoted string literal, under the same
// rule as quoteIdent (Distributed and replication paths take literals).
func quoteName(kind, name string) (string, error) {
	if !identRe.MatchString(name) {
		return "", fmt.Errorf("eventstore: %s name %q must match %s", kind, name, identRe)
	}
	return "'" + name + "'", nil
}
