package schemas

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCanonicalNumbers checks the number serialization samples of RFC 8785
// Appendix B.
func TestCanonicalNumbers(t *testing.T) {
	f, err := os.Open("testdata/jcs/numbers.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	n := 0
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		hexBits, want, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		raw, err := hex.DecodeString(hexBits)
		if err != nil || len(raw) != 8 {
			t.Fatalf("bad hex %q", hexBits)
		}
		var bits uint64
		for _, b := range raw {
			bits = bits<<8 | uint64(b)
		}
		v := math.Float64frombits(bits)
		got, err := appendCanonicalNumber(nil, v)
		if want == "error" {
			if !errors.Is(err, ErrNumberRange) {
				t.Errorf("%s (%v): got %q, %v; want ErrNumberRange", hexBits, v, got, err)
			}
			continue
		}
		if err != nil || string(got) != want {
			t.Errorf("%s (%v): got %q, %v; want %q", hexBits, v, got, err, want)
		}
		// The canonical text must parse back to the same double.
		back, err := parseNumber(string(got))
		if err != nil || (back != v && !(v == 0 && back == 0)) {
			t.Errorf("%s: %q parses back to %v, %v", hexBits, got, back, err)
		}
		n++
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("only %d vectors read", n)
	}
}

func TestCanonicalizeNumberForms(t *testing.T) {
	for in, want := range map[string]string{
		"1":                       "1",
		"-1":                      "-1",
		"1.0":                     "1",
		"-0":                      "0",
		"-0.0e5":                  "0",
		"1e1":                     "10",
		"1E+2":                    "100",
		"0.1":                     "0.1",
		"1e-7":                    "1e-7",
		"123e-9":                  "1.23e-7",
		"0.000001":                "0.000001",
		"1e21":                    "1e+21",
		"123456789012345678901":   "123456789012345680000",
		"9007199254740993":        "9007199254740992",
		"1e-400":                  "0",
		"2e-324":                  "0",
		"4.9406564584124654e-324": "5e-324",
	} {
		got, err := Canonicalize([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("Canonicalize(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"1e400", "-1e309"} {
		if _, err := Canonicalize([]byte(in)); !errors.Is(err, ErrNumberRange) {
			t.Errorf("Canonicalize(%s): got %v, want ErrNumberRange", in, err)
		}
	}
}

// TestCanonicalizeGolden checks testdata/jcs/*.in.json against the matching
// *.out.json: the RFC 8785 examples (sections 3.2.2 and 3.2.3, appendix C)
// and cases for escaping, sorting and nesting.
func TestCanonicalizeGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/jcs/*.in.json")
	if err != nil || len(ins) < 5 {
		t.Fatalf("inputs: %v, %v", ins, err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(name, func(t *testing.T) {
			input := readFile(t, in)
			want := bytes.TrimSuffix(readFile(t, strings.TrimSuffix(in, ".in.json")+".out.json"), []byte("\n"))
			got, err := Canonicalize(input)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			// Canonicalization is idempotent.
			again, err := Canonicalize(got)
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("not idempotent: %s, %v", again, err)
			}
		})
	}
}

func TestCanonicalJSONGoValues(t *testing.T) {
	type inner struct {
		Z string  `json:"z"`
		A float64 `json:"a"`
	}
	v := map[string]any{
		"struct": inner{Z: "<&>", A: 1e21},
		"ints":   []int64{1, -2, 1 << 53},
		"f32":    float32(0.1),
		"nil":    nil,
		"bytes":  []byte("hi"),
	}
	got, err := CanonicalJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"bytes":"aGk=","f32":0.1,"ints":[1,-2,9007199254740992],"nil":null,"struct":{"a":1e+21,"z":"<&>"}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := CanonicalJSON(math.NaN()); err == nil {
		t.Error("NaN: want error")
	}
}

func TestCompareUTF16(t *testing.T) {
	// In UTF-16, U+1F600 (surrogates D83D DE00) sorts before U+FB33,
	// although its code point is larger.
	ordered := []string{"", "\r", "1", "a", "ab", "b", "\u0080", "\u00f6", "\u20ac", "\U0001F600", "\U0001F601", "\ufb33", "\uffff"}
	for i := range ordered {
		for j := range ordered {
			got := compareUTF16(ordered[i], ordered[j])
			if (i < j) != (got < 0) || (i == j) != (got == 0) {
				t.Errorf("compareUTF16(%q, %q) = %d", ordered[i], ordered[j], got)
			}
		}
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		kind error
	}{
		"duplicate key":     {`{"a":1,"a":2}`, ErrDuplicateKey},
		"lone high":         {`"\ud800"`, ErrSyntax},
		"lone low":          {`"\udc00x"`, ErrSyntax},
		"high then non-low": {`"\ud800\u0041"`, ErrSyntax},
		"invalid utf-8":     {"\"\xff\"", ErrSyntax},
		"overlong utf-8":    {"\"\xc0\xaf\"", ErrSyntax},
		"trailing":          {`{} {}`, ErrTrailingData},
		"leading zero":      {`01`, ErrTrailingData},
		"bare minus":        {`-`, ErrSyntax},
		"nan":               {`NaN`, ErrSyntax},
		"single quotes":     {`{'a':1}`, ErrSyntax},
		"trailing comma":    {`[1,]`, ErrSyntax},
		"raw control":       {"\"a\tb\"", ErrSyntax},
		"bad escape":        {`"\x"`, ErrSyntax},
		"empty":             {``, ErrSyntax},
		"bom":               {"\xef\xbb\xbf{}", ErrSyntax},
		"too deep":          {strings.Repeat("[", maxCanonicalDepth+1) + strings.Repeat("]", maxCanonicalDepth+1), ErrTooDeep},
	} {
		_, err := Canonicalize([]byte(tc.in))
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: got %v, want %v", name, err, tc.kind)
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Offset < 0 {
			t.Errorf("%s: want *DecodeError with an offset, got %#v", name, err)
		}
	}
}

// TestParserAgreesWithEncodingJSON checks that what the strict parser
// accepts, encoding/json accepts with the same meaning.
func TestParserAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"a":[1,2.5,-3e2,true,false,null,"x\u00e9\n"],"b":{}}`,
		` [ ] `,
		`"\ud83d\ude00"`,
		`0`,
	} {
		mine, err := parseJSON([]byte(in), 16)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		dec := json.NewDecoder(strings.NewReader(in))
		dec.UseNumber()
		var theirs any
		if err := dec.Decode(&theirs); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		a, _ := json.Marshal(mine)
		b, _ := json.Marshal(theirs)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: %s != %s", in, a, b)
		}
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The direct envelope encoder must produce exactly what the general path
// (encoding/json, then RFC 8785 canonicalization) produces.
func TestCanonicalEventMatchesGeneralPath(t *testing.T) {
	now := time.Date(2026, 11, 26, 15, 9, 44, 123456789, time.UTC)
	events := []Event{
		validEvent(),
		{ID: "x", OccurredAt: now},
		{ID: "y", OccurredAt: now, Actor: Actor{UserAgent: "ua"}, Context: Context{TraceID: "t"}, Targets: []Target{{Name: "\xffn\"", ID: "é"}}},
		{
			ID: "01JBZ\xff", OrgID: "o\u2028", Action: "a.b", Category: "c", OccurredAt: now,
			Actor:   Actor{Type: "user", ID: "u\"\\", Name: "Zoë 😀", Email: "<a&b>", IP: "::1", UserAgent: "\x01\t"},
			Targets: []Target{{Type: "t", ID: "1"}, {Type: "t", ID: "2", Name: "n"}},
			Outcome: "failure", Reason: "line1\nline2",
			Context: Context{RequestID: "r", TraceID: "tr", Source: "s"},
			Details: map[string]any{
				"\U0001F600": 1, "\ufb33": 2, "a": []any{1.5, "x", nil, true, map[string]any{"z": 1, "y": []string{"q"}}},
				"big": int64(1) << 60, "f32": float32(0.1), "n": json.Number("1e3"), "nilmap": map[string]any(nil),
				"typed": map[string]int{"b": 2, "a": 1}, "bad\xfe": "v\xfe",
			},
		},
	}
	for i, e := range events {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Canonicalize(raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Canonical(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, want)
		}
		// The lengths AppendCanonicalStoredFrom finds the details with.
		if h, tl := canonicalHeadLen(&e), canonicalTargetsLen(&e); h+11 > len(got) || string(got[h:h+11]) != `,"details":` ||
			tl > len(got) || !strings.HasPrefix(string(got[len(got)-tl:]), `,"targets":[`) {
			t.Errorf("event %d: head %d, targets %d bytes in %s", i, h, tl, got)
		}
		// The stored form: received_at included when set.
		for _, at := range []time.Time{now.Add(1500 * time.Millisecond), time.Date(1, 2, 3, 4, 5, 6, 7, time.FixedZone("x", 3600))} {
			e.ReceivedAt = &at
			raw, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Canonicalize(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := CanonicalStored(e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("event %d stored:\n got %s\nwant %s", i, got, want)
			}
		}
		e.ReceivedAt = nil
		if got, err := CanonicalStored(e); err != nil || string(got) != string(want) {
			t.Errorf("event %d stored without received_at: %s, %v", i, got, err)
		}
	}
}

// appendJSONString must equal escaping after coercion to valid UTF-8.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s\n\t\x01\x1f\x7f", "é😀", "bad\xff\xfe", "\xe2\x82", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := string(appendJSONString(nil, s))
		want := string(appendCanonicalString(nil, toValidUTF8(s)))
		if got != want {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestExactNumber(t *testing.T) {
	for s, want := range map[string]struct {
		canonical string
		exact     bool
	}{
		"1": {"1", true}, "1.0": {"1", true}, "1e2": {"100", true}, "100.00": {"100", true}, "-0.0": {"0", true},
		"0.1": {"0.1", true}, "0.30000000000000004": {"0.30000000000000004", true}, "12.5e-1": {"1.25", true},
		"1E+21": {"1e+21", true}, "0e99999999999999999999": {"0", true},
		"0.10000000000000001":     {"0.1", false},
		"9007199254740993.0":      {"9007199254740992", false},
		"1e-400":                  {"0", false},
		"4.9406564584124654e-324": {"5e-324", false},
		"1e400":                   {"", false},
		"0x10":                    {"", false},
	} {
		c, exact := ExactNumber(s)
		if c != want.canonical || exact != want.exact {
			t.Errorf("ExactNumber(%q) = %q, %v; want %q, %v", s, c, exact, want.canonical, want.exact)
		}
	}
}

// AppendCanonicalStoredFrom takes the members from details to reason from
// the canonical bytes of the event before its actor and targets changed,
// and writes what CanonicalStored writes for the changed event; bytes not
// of that shape are not used.
func TestCanonicalStoredFrom(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 2, 3, 456000000, time.UTC)
	tricky := validEvent()
	// Details holding the envelope's member names as structure and text.
	tricky.Details = map[string]any{
		"x":       map[string]any{"details": []any{1}, "targets": []any{map[string]any{"id": "t"}}},
		"targets": []any{"a", ",\"targets\":["},
		"y":       `,"details":{},"id":"` + tricky.ID + `","occurred_at":"`,
	}
	tricky.Reason, tricky.Outcome = `",\"targets\":[`, OutcomeFailure
	tricky.Targets = append(tricky.Targets, Target{Type: "t", ID: `,"targets":[`, Name: `"],"x":{`})
	noTargets := validEvent()
	noTargets.Targets, noTargets.Details = nil, nil
	for i, plain := range []Event{validEvent(), tricky, noTargets} {
		raw, err := Canonical(plain)
		if err != nil {
			t.Fatal(err)
		}
		// The changed event: other actor and target strings, received_at.
		changed := plain
		changed.ReceivedAt = &at
		changed.Actor.Name, changed.Actor.Email = "hmac-sha256:00", ""
		changed.Targets = append([]Target(nil), plain.Targets...)
		for k := range changed.Targets {
			changed.Targets[k].Name = "hmac-sha256:" + strings.Repeat("ab", k+1)
		}
		want, err := CanonicalStored(changed)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*Event{&plain, nil} {
			got, err := AppendCanonicalStoredFrom([]byte("prefix"), &changed, p, raw)
			if err != nil || string(got) != "prefix"+string(want) {
				t.Errorf("event %d (plain given: %v):\n got %s (%v)\nwant prefix%s", i, p != nil, got, err, want)
			}
		}
		if h, tl := canonicalHeadLen(&plain), canonicalTargetsLen(&plain); string(raw[h:h+11]) != `,"details":` || string(raw[len(raw)-tl:len(raw)-tl+12]) != `,"targets":[` {
			t.Errorf("event %d: head %d, targets %d bytes in %s", i, h, tl, raw)
		}
		// Raw bytes of an event with other members from details to
		// reason: they are taken from raw as they are.
		for name, other := range map[string]func(*Event){
			"details": func(e *Event) { e.Details = map[string]any{"other": true} },
			"id":      func(e *Event) { e.ID = "01JDQ7Z8K3M6W1B5T9YV4C2N0G" },
			"reason":  func(e *Event) { e.Reason = "" },
			"time":    func(e *Event) { e.OccurredAt = e.OccurredAt.Add(time.Millisecond) },
		} {
			o := plain
			other(&o)
			oraw, err := Canonical(o)
			if err != nil {
				t.Fatal(err)
			}
			oc := changed
			other(&oc)
			want, err := CanonicalStored(oc)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []*Event{&o, nil} {
				if got, err := AppendCanonicalStoredFrom(nil, &changed, p, oraw); err != nil || string(got) != string(want) {
					t.Errorf("event %d, other %s (plain given: %v):\n got %s (%v)\nwant %s", i, name, p != nil, got, err, want)
				}
			}
		}
		for _, bad := range []string{"", "{}", `{"details":{}}`, string(raw[:len(raw)/2]), `,"details":{},"targets":[`} {
			if got, err := AppendCanonicalStoredFrom(nil, &changed, &plain, []byte(bad)); err != nil || string(got) != string(want) {
				t.Errorf("event %d, raw %q:\n got %s (%v)\nwant %s", i, bad, got, err, want)
			}
		}
	}
}

// safePrefix agrees with asciiSafe for every byte at every position of
// an 8-byte word, alone and next to any other byte.
func TestSafePrefix(t *testing.T) {
	want := func(s []byte) int {
		for i, c := range s {
			if !asciiSafe[c] {
				return i
			}
		}
		return len(s)
	}
	s := []byte("abcdefgh")
	for p := range 8 {
		for q := range 8 {
			for c := range 256 {
				for d := range 256 {
					copy(s, "abcdefgh")
					s[p], s[q] = byte(c), byte(d)
					if got := safePrefix(string(s)); got != want(s) {
						t.Fatalf("safePrefix(%q) = %d", s, got)
					}
				}
			}
		}
	}
}
