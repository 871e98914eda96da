package ingestapi

import (
	"encoding/json"

	"github.com/takumo/audit/platform/auditapi"
)

// splitBatch is decodeBatch's fast path for a well-formed body: one pass
// to check the JSON (json.Valid), one to cut {"events": [e1, e2, ...]}
// into its elements, which share body's bytes. It reports false for
// anything else — malformed JSON, another member, a count out of range —
// which decodeBatch then decodes again to name the problem.
func splitBatch(body []byte, req *auditapi.IngestRequest) bool {
	if !json.Valid(body) {
		return false
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	i = skipSpace(body, i+1)
	const key = `"events"`
	if len(body)-i < len(key) || string(body[i:i+len(key)]) != key {
		return false
	}
	i = skipSpace(body, i+len(key))
	if i >= len(body) || body[i] != ':' {
		return false
	}
	i = skipSpace(body, i+1)
	if i >= len(body) || body[i] != '[' {
		return false
	}
	i++
	var events []json.RawMessage
	for {
		i = skipSpace(body, i)
		if i >= len(body) {
			return false
		}
		if body[i] == ']' && len(events) == 0 {
			break
		}
		end := valueEnd(body, i)
		if end < 0 {
			return false
		}
		events = append(events, json.RawMessage(body[i:end:end]))
		i = skipSpace(body, end)
		if i >= len(body) {
			return false
		}
		if body[i] == ']' {
			break
		}
		if body[i] != ',' {
			return false
		}
		i++
	}
	i = skipSpace(body, i+1)
	if i >= len(body) || body[i] != '}' || skipSpace(body, i+1) != len(body) {
		return false // another member after "events", or trailing data
	}
	if len(events) == 0 || len(events) > auditapi.MaxIngestEvents {
		return false
	}
	req.Events = events
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the JSON value starting at b[i], in a body
// json.Valid accepted: strings are skipped with their escapes, and nested
// objects and arrays by depth. -1 if b[i] does not start a value.
func valueEnd(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			j++
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			if depth == 0 {
				return j + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j // the end of a number, true, false or null
			}
			depth--
			if depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		default:
			if depth == 0 && (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
				return j
			}
		}
	}
	if depth == 0 && i < len(b) {
		return len(b)
	}
	return -1
}
