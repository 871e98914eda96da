package schemas

// Hand-written matchers for the identifier forms the envelope uses. They
// run on every event, where regular expressions cost more than the rest
// of validation together.

// isLowerSnake matches [a-z][a-z0-9_]*.
func isLowerSnake(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// isActionName matches [a-z][a-z0-9_]*\.[a-z][a-z0-9_]*.
func isActionName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return isLowerSnake(s[:i]) && isLowerSnake(s[i+1:])
		}
	}
	return false
}

// isToken matches [A-Za-z0-9_-]+ (org ids, details keys).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
