package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"net/mail"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// maxSafeInteger is 2^53-1, the largest integer every IEEE 754 double
// consumer (and RFC 8785) represents exactly.
const maxSafeInteger = 1<<53 - 1

// normalizeMaxDepth stops normalizing details that nest absurdly deep (or
// refer to themselves); anything past MaxDetailsDepth is reported anyway.
const normalizeMaxDepth = 64

// Problem is one rule an event breaks.
type Problem struct {
	// Path locates the value in the event's JSON form, e.g. "actor.email",
	// "targets[2].id", "details.to_role"; it is empty for the event as a
	// whole.
	Path string `json:"path"`
	// Message says what is wrong, in words.
	Message string `json:"message"`
}

// String returns "path: message", or the message alone when Path is empty.
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem Catalog.Validate found in an event.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems on one line, separated by "; ".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("schemas: invalid event")
	if len(e.Problems) > 1 {
		fmt.Fprintf(&b, " (%d problems)", len(e.Problems))
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Validate checks e against the v1 envelope rules, the limits and the
// catalog, and reports every problem at once as a *ValidationError (nil
// when e is valid). The rules:
//
//   - id: required; a ULID or UUIDv7 in canonical form (see ValidID).
//   - org_id: required; [A-Za-z0-9_-], at most MaxOrgIDLen bytes.
//   - action: required; "<resource>.<verb>" in lower snake case, registered
//     in the catalog.
//   - category: required; the catalog's category for the action.
//   - occurred_at: required; not before MinOccurredYear, not more than
//     MaxFutureSkew ahead of the local clock.
//   - actor.type: user, api_key, service or system. actor.id: required.
//     actor.email, if set, a bare address. actor.ip, if set, an IPv4 or
//     IPv6 address without zone.
//   - targets: at most MaxTargets; each with type (lower snake case) and id.
//   - outcome: success or failure. reason: required when outcome is
//     failure, and must be empty otherwise (it explains a failure).
//   - details: at most MaxDetailsKeys keys per object, keys matching
//     [A-Za-z0-9_-]{1,MaxDetailsKeyLen}, strings at most
//     MaxDetailsStringLen bytes, arrays at most MaxDetailsArrayLen items,
//     at most MaxDetailsDepth levels; integers within ±(2^53-1) and every
//     number finite and exact (ExactNumber: the number its canonical form
//     denotes, so "0.10000000000000001" is refused, "0.1" and "1.0" are
//     not), so canonical encoding keeps them exact. The action's
//     fields must be present when required and of their type. Keys the
//     action does not list are allowed, within these limits, so producers
//     can add context before the catalog learns about it.
//   - every string: valid UTF-8 within its limit (see LIMITS.md). No
//     control characters in identifiers, names, emails, user agents or
//     context; reason and detail strings may contain tab, CR and LF.
//   - the canonical encoding (Canonical) is at most MaxEventBytes.
//
// received_at is not checked: it belongs to the ingestor. Details may hold
// any value encoding/json can marshal; rules apply to its JSON form.
// Validate does not modify e. It is safe for concurrent use, also with
// Register, provided e is not modified meanwhile.
func (c *Catalog) Validate(e *Event) error {
	bp := validateBufs.Get().(*[]byte)
	b, err := c.appendEncoded((*bp)[:0], e)
	if b != nil && cap(b) <= 64<<10 {
		*bp = b[:0]
	}
	validateBufs.Put(bp)
	return err
}

// validateBufs holds the buffers Validate encodes into.
var validateBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Encode validates e exactly as Validate does and, when it is valid,
// returns its canonical bytes (Canonical), computed once for both.
func (c *Catalog) Encode(e *Event) ([]byte, error) {
	return c.appendEncoded(make([]byte, 0, 1024), e)
}

// appendEncoded is Encode appending the canonical bytes to dst.
func (c *Catalog) appendEncoded(dst []byte, e *Event) ([]byte, error) {
	if e == nil {
		return nil, &ValidationError{Problems: []Problem{{Message: "event is nil"}}}
	}
	var v validator

	switch {
	case e.ID == "":
		v.add("id", "required")
	case !ValidID(e.ID):
		v.add("id", "must be a ULID (26 upper-case Crockford base32 characters) or a UUIDv7 (lower-case, hyphenated)")
	}

	if !ValidOrgID(e.OrgID) {
		switch {
		case e.OrgID == "":
			v.add("org_id", "required")
		case len(e.OrgID) > MaxOrgIDLen:
			v.add("org_id", "longer than %d bytes", MaxOrgIDLen)
		default:
			v.add("org_id", "may contain only letters, digits, '_' and '-'")
		}
	}

	spec, known := c.lookup(e.Action)
	switch {
	case e.Action == "":
		v.add("action", "required")
	case len(e.Action) > MaxActionLen:
		v.add("action", "longer than %d bytes", MaxActionLen)
	case !isActionName(e.Action):
		v.add("action", "must be <resource>.<verb> in lower snake case, e.g. member.role_changed")
	case !known:
		v.add("action", "unknown action %q (not in the catalog)", e.Action)
	}

	switch {
	case known && e.Category == "":
		v.add("category", "required (%q for %s)", spec.Category, e.Action)
	case known && e.Category != spec.Category:
		v.add("category", "must be %q for %s", spec.Category, e.Action)
	case !known && e.Category == "":
		v.add("category", "required")
	case !known && !c.HasCategory(e.Category):
		v.add("category", "unknown category %q", truncate(e.Category))
	}

	switch {
	case e.OccurredAt.IsZero():
		v.add("occurred_at", "required")
	case e.OccurredAt.Before(time.Date(MinOccurredYear, 1, 1, 0, 0, 0, 0, time.UTC)):
		v.add("occurred_at", "before %d", MinOccurredYear)
	case e.OccurredAt.After(time.Now().Add(MaxFutureSkew)):
		v.add("occurred_at", "more than %v in the future", MaxFutureSkew)
	}

	v.actor(&e.Actor)
	v.targets(e.Targets)
	if known && len(spec.Targets) > 0 {
		for i, t := range e.Targets[:min(len(e.Targets), MaxTargets)] {
			if t.Type != "" && !slices.Contains(spec.Targets, t.Type) {
				v.add("targets["+strconv.Itoa(i)+"].type", "%s takes targets of type %s, not %q", e.Action, strings.Join(spec.Targets, ", "), truncate(t.Type))
			}
		}
	}

	switch e.Outcome {
	case OutcomeSuccess:
		if e.Reason != "" {
			v.add("reason", "only allowed when outcome is %q", OutcomeFailure)
		}
	case OutcomeFailure:
		if e.Reason == "" {
			v.add("reason", "required when outcome is %q", OutcomeFailure)
		}
	case "":
		v.add("outcome", "required")
	default:
		v.add("outcome", "must be %q or %q", OutcomeSuccess, OutcomeFailure)
	}
	if e.Reason != "" {
		v.text("reason", e.Reason, MaxReasonLen, true)
	}

	var fields []Field
	if known {
		fields = spec.Details
	}
	v.details(e.Details, fields)

	v.ident("context.request_id", e.Context.RequestID, MaxContextLen)
	v.ident("context.trace_id", e.Context.TraceID, MaxContextLen)
	v.ident("context.source", e.Context.Source, MaxContextLen)

	b, err := appendCanonicalEvent(dst, e, false)
	if err != nil {
		err = fmt.Errorf("schemas: canonical event: %w", err)
	}
	switch {
	case err != nil && len(v.problems) == 0:
		v.add("", "cannot be encoded: %v", err)
	case err == nil && len(b) > MaxEventBytes:
		v.add("", "canonical encoding is %d bytes, limit is %d", len(b), MaxEventBytes)
	}

	if len(v.problems) == 0 {
		return b, nil
	}
	return nil, &ValidationError{Problems: v.problems}
}

type validator struct {
	problems []Problem
}

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// text checks a string's encoding, length and control characters;
// multiline allows tab, CR and LF. It reports whether s passed.
func (v *validator) text(path, s string, limit int, multiline bool) bool {
	valid, ctrl := scanText(s, multiline)
	switch {
	case !valid:
		v.add(path, "not valid UTF-8")
	case len(s) > limit:
		v.add(path, "longer than %d bytes", limit)
	case ctrl:
		v.add(path, "contains control characters")
	default:
		return true
	}
	return false
}

// scanText reports, in one pass, whether s is valid UTF-8 and whether it
// holds a control character: U+0000-U+001F (tab, LF and CR allowed when
// multiline), U+007F-U+009F.
func scanText(s string, multiline bool) (valid, ctrl bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c < 0x20 && !(multiline && (c == '\t' || c == '\n' || c == '\r')) || c == 0x7f {
				ctrl = true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false, ctrl
		}
		if r <= 0x9f {
			ctrl = true
		}
		i += size
	}
	return true, ctrl
}

// ident checks an optional single-line string.
// cleanText reports whether text(path, s, limit, false) would pass.
func cleanText(s string, limit int) bool {
	if len(s) > limit {
		return false
	}
	valid, ctrl := scanText(s, false)
	return valid && !ctrl
}

func (v *validator) ident(path, s string, limit int) bool {
	return v.text(path, s, limit, false)
}

// required checks a required single-line string.
func (v *validator) required(path, s string, limit int) bool {
	if s == "" {
		v.add(path, "required")
		return false
	}
	return v.ident(path, s, limit)
}

func (v *validator) actor(a *Actor) {
	switch a.Type {
	case ActorUser, ActorAPIKey, ActorSvc, ActorSystem:
	case "":
		v.add("actor.type", "required")
	default:
		v.add("actor.type", "must be one of %s, %s, %s, %s", ActorUser, ActorAPIKey, ActorSvc, ActorSystem)
	}
	v.required("actor.id", a.ID, MaxActorIDLen)
	v.ident("actor.name", a.Name, MaxNameLen)
	if a.Email != "" && v.ident("actor.email", a.Email, MaxEmailLen) {
		if !isSimpleEmail(a.Email) && !isBareAddress(a.Email) {
			v.add("actor.email", "not a bare email address")
		}
	}
	if a.IP != "" && v.ident("actor.ip", a.IP, 64) {
		if ip, err := netip.ParseAddr(a.IP); err != nil || ip.Zone() != "" {
			v.add("actor.ip", "not an IPv4 or IPv6 address")
		}
	}
	v.ident("actor.user_agent", a.UserAgent, MaxUserAgentLen)
}

func (v *validator) targets(ts []Target) {
	if len(ts) > MaxTargets {
		v.add("targets", "%d targets, limit is %d", len(ts), MaxTargets)
	}
	for i, t := range ts[:min(len(ts), MaxTargets)] {
		if cleanText(t.Type, MaxTargetTypeLen) && t.Type != "" && isLowerSnake(t.Type) &&
			cleanText(t.ID, MaxTargetIDLen) && t.ID != "" && cleanText(t.Name, MaxNameLen) {
			continue // valid: no need to name its paths
		}
		p := "targets[" + strconv.Itoa(i) + "]"
		if v.required(p+".type", t.Type, MaxTargetTypeLen) && !isLowerSnake(t.Type) {
			v.add(p+".type", "must be lower snake case, e.g. api_key")
		}
		v.required(p+".id", t.ID, MaxTargetIDLen)
		v.ident(p+".name", t.Name, MaxNameLen)
	}
}

// details checks the details object against the limits and the action's
// fields.
func (v *validator) details(details map[string]any, fields []Field) {
	const path = "details"
	if len(details) > MaxDetailsKeys {
		v.add(path, "%d keys, limit is %d", len(details), MaxDetailsKeys)
	}
	for _, f := range fields {
		if _, ok := details[f.Name]; !ok && f.Required {
			v.add(path+"."+f.Name, "required (%s)", typeName(f.Type))
		}
	}
	// Map order first, which costs nothing; only when a value has a
	// problem are the keys checked again in sorted order, so the problems
	// are always listed in the same order.
	n := len(v.problems)
	for k, val := range details {
		v.detail(path, k, val, fields)
	}
	if len(v.problems) == n {
		return
	}
	v.problems = v.problems[:n]
	for _, k := range sortedKeys(details) {
		v.detail(path, k, details[k], fields)
	}
}

// detail checks one key of details and its value.
func (v *validator) detail(path, k string, val any, fields []Field) {
	if !v.key(path, k) {
		return
	}
	p := path + "." + k
	val, err := normalize(val, 0)
	if err != nil {
		v.add(p, "cannot be encoded as JSON: %v", err)
		return
	}
	if !v.value(p, val, 1) {
		return
	}
	for _, f := range fields {
		if f.Name == k {
			v.field(p, f, val)
			return
		}
	}
}

// key checks one details key and reports whether it is valid.
func (v *validator) key(parent, k string) bool {
	if len(k) > MaxDetailsKeyLen || !isToken(k) {
		v.add(parent, "key %q must match [A-Za-z0-9_-]{1,%d}", truncate(k), MaxDetailsKeyLen)
		return false
	}
	return true
}

// value checks limits on a normalized value held by a container at nesting
// level `level`, and reports whether no problem was found.
func (v *validator) value(path string, val any, level int) bool {
	n := len(v.problems)
	switch x := val.(type) {
	case string:
		v.text(path, x, MaxDetailsStringLen, true)
	case json.Number:
		v.number(path, x)
	case []any:
		if level+1 > MaxDetailsDepth {
			v.add(path, "nested deeper than %d levels", MaxDetailsDepth)
			break
		}
		if len(x) > MaxDetailsArrayLen {
			v.add(path, "%d items, limit is %d", len(x), MaxDetailsArrayLen)
		}
		for i, e := range x[:min(len(x), MaxDetailsArrayLen)] {
			v.value(path+"["+strconv.Itoa(i)+"]", e, level+1)
		}
	case map[string]any:
		if level+1 > MaxDetailsDepth {
			v.add(path, "nested deeper than %d levels", MaxDetailsDepth)
			break
		}
		if len(x) > MaxDetailsKeys {
			v.add(path, "%d keys, limit is %d", len(x), MaxDetailsKeys)
		}
		for _, k := range sortedKeys(x) {
			if v.key(path, k) {
				v.value(path+"."+k, x[k], level+1)
			}
		}
	}
	return len(v.problems) == n
}

func (v *validator) number(path string, n json.Number) {
	f, err := parseNumber(string(n))
	if err != nil {
		v.add(path, "number %s is out of range", truncate(string(n)))
		return
	}
	if isIntegerLiteral(string(n)) && math.Abs(f) > maxSafeInteger {
		v.add(path, "integer %s is outside ±(2^53-1) and would lose precision; send it as a string", n)
		return
	}
	if c, exact := ExactNumber(string(n)); !exact {
		v.add(path, "number %s would lose precision: the log and every reader using doubles hold it as %s; send %s, or the number as a string", truncate(string(n)), c, c)
	}
}

// field checks a detail value against the action's field spec.
func (v *validator) field(path string, f Field, val any) {
	switch f.Type {
	case TypeString:
		s, ok := val.(string)
		switch {
		case !ok:
			v.add(path, "must be a string, got %s", jsonKind(val))
		case s == "" && f.Required:
			v.add(path, "must not be empty")
		case len(f.Enum) > 0 && !contains(f.Enum, s):
			v.add(path, "must be one of %s", strings.Join(f.Enum, ", "))
		}
	case TypeInt:
		n, ok := val.(json.Number)
		if !ok {
			v.add(path, "must be an integer, got %s", jsonKind(val))
			break
		}
		if f, err := parseNumber(string(n)); err == nil && (f != math.Trunc(f) || math.Abs(f) > maxSafeInteger) {
			v.add(path, "must be an integer within ±(2^53-1)")
		}
	case TypeNumber:
		if _, ok := val.(json.Number); !ok {
			v.add(path, "must be a number, got %s", jsonKind(val))
		}
	case TypeBool:
		if _, ok := val.(bool); !ok {
			v.add(path, "must be a boolean, got %s", jsonKind(val))
		}
	case TypeStringList:
		a, ok := val.([]any)
		if !ok {
			v.add(path, "must be an array of strings, got %s", jsonKind(val))
			break
		}
		for i, e := range a {
			s, ok := e.(string)
			switch {
			case !ok:
				v.add(path+"["+strconv.Itoa(i)+"]", "must be a string, got %s", jsonKind(e))
			case len(f.Enum) > 0 && !contains(f.Enum, s):
				v.add(path+"["+strconv.Itoa(i)+"]", "must be one of %s", strings.Join(f.Enum, ", "))
			}
		}
	case TypeObject:
		if _, ok := val.(map[string]any); !ok {
			v.add(path, "must be an object, got %s", jsonKind(val))
		}
	}
}

// normalize converts a details value to the generic form parseJSON
// produces (map[string]any, []any, string, json.Number, bool, nil), as it
// will appear on the wire. Common types are converted directly, keeping
// strings as they are so invalid UTF-8 is caught; other types go through
// encoding/json.
func normalize(val any, depth int) (any, error) {
	if depth > normalizeMaxDepth {
		return nil, fmt.Errorf("nested more than %d levels", normalizeMaxDepth)
	}
	switch x := val.(type) {
	case nil, bool, string:
		return x, nil
	case json.Number:
		if !validNumber(string(x)) {
			return nil, fmt.Errorf("%q is not a JSON number", truncate(string(x)))
		}
		return x, nil
	case float64:
		return floatNumber(x, 64)
	case float32:
		return floatNumber(float64(x), 32)
	case int:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int8:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int16:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int32:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case uint:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint8:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint16:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint32:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case []string:
		if x == nil {
			return nil, nil
		}
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, nil
	case []any:
		if x == nil {
			return nil, nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]string:
		if x == nil {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, s := range x {
			out[k] = s
		}
		return out, nil
	case map[string]any:
		if x == nil {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	}
	if rv := reflect.ValueOf(val); (rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface) && rv.IsNil() {
		return nil, nil
	}
	raw, err := json.Marshal(val)
	if err != nil {
		return nil, err
	}
	return parseJSON(raw, normalizeMaxDepth)
}

func floatNumber(f float64, bits int) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%v is not a finite number", f)
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, bits)), nil
}

// isIntegerLiteral reports whether a JSON number has neither a fraction nor
// an exponent.
func isIntegerLiteral(s string) bool {
	return !strings.ContainsAny(s, ".eE")
}

func typeName(t FieldType) string {
	switch t {
	case TypeString:
		return "string"
	case TypeInt:
		return "integer"
	case TypeNumber:
		return "number"
	case TypeBool:
		return "boolean"
	case TypeStringList:
		return "array of strings"
	case TypeObject:
		return "object"
	}
	return "any value"
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// truncate shortens user input quoted in messages.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// isBareAddress reports whether s parses as an RFC 5322 address with no
// display name and no rewriting.
func isBareAddress(s string) bool {
	addr, err := mail.ParseAddress(s)
	return err == nil && addr.Address == s && addr.Name == ""
}
