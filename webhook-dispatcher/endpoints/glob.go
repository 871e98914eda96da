package endpoints

import (
	"fmt"
	"strings"
)

// MaxFilters bounds the filters of one endpoint.
const MaxFilters = 64

// ValidFilter reports why f is not a valid action filter: lower-case
// letters, digits, '_', '.' and '*' (any run of characters), 1-128 bytes.
func ValidFilter(f string) error {
	if f == "" || len(f) > 128 {
		return fmt.Errorf("filter %q must be 1-128 bytes", f)
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '*') {
			return fmt.Errorf("filter %q: only a-z, 0-9, '_', '.' and '*' are allowed", f)
		}
	}
	return nil
}

// MatchFilter reports whether action matches the glob pattern, where '*'
// stands for any run of characters (dots included): "member.*" matches
// "member.role_changed", "*" matches everything, "*.created" matches
// "api_key.created".
func MatchFilter(pattern, action string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == action
	}
	if !strings.HasPrefix(action, pattern[:star]) {
		return false
	}
	action = action[star:]
	pattern = pattern[star+1:]
	for {
		star = strings.IndexByte(pattern, '*')
		if star < 0 {
			return strings.HasSuffix(action, pattern)
		}
		i := strings.Index(action, pattern[:star])
		if i < 0 {
			return false
		}
		action = action[i+star:]
		pattern = pattern[star+1:]
	}
}

// Matches reports whether action passes filters; no filters means every
// action.
func Matches(filters []string, action string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if MatchFilter(f, action) {
			return true
		}
	}
	return false
}
