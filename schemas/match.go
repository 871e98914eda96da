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

// isSimpleEmail accepts the common form of an address, local@domain, where
// both sides are dot-separated runs of [A-Za-z0-9_%+-] (a subset of what
// RFC 5322 dot-atoms allow), without the cost of a full parse. Anything
// else goes to the full parser.
func isSimpleEmail(s string) bool {
	at := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '@' {
			if at >= 0 {
				return false
			}
			at = i
		}
	}
	return at > 0 && dotAtom(s[:at]) && dotAtom(s[at+1:])
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '%', c == '+', c == '-':
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}
