package schemas

import (
	"crypto/rand"
	"io"
	"sync"
	"time"
)

// crockford is the Crockford base32 alphabet ULIDs use.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulidLen and uuidLen are the lengths of the accepted ID string forms.
const (
	ulidLen = 26
	uuidLen = 36
)

// maxULIDTime is the largest millisecond timestamp a ULID holds (48 bits).
const maxULIDTime = 1<<48 - 1

// ids is the process-wide generator behind NewID. It is the package's only
// mutable global state.
var ids = &idGenerator{now: time.Now, rand: rand.Reader}

// NewID returns a new ULID: 48 bits of Unix time in milliseconds and 80
// bits from crypto/rand, in the canonical 26-character upper-case Crockford
// base32 form, e.g. "01JDQ7Z8K3M6W1B5T9YV4C2N0F".
//
// IDs returned by one process are strictly increasing, also within one
// millisecond (the random part is incremented, as the ULID spec's monotonic
// mode does). If the random part would overflow, or the clock steps back,
// the timestamp part is held at or moved one past the last one used, so the
// order never breaks. NewID is safe for concurrent use.
func NewID() string {
	return ids.next()
}

type idGenerator struct {
	mu      sync.Mutex
	now     func() time.Time
	rand    io.Reader
	lastMS  uint64
	entropy [10]byte
}

func (g *idGenerator) next() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := uint64(0)
	if t := g.now().UnixMilli(); t > 0 {
		ms = min(uint64(t), maxULIDTime)
	}
	switch {
	case ms > g.lastMS:
		g.lastMS = ms
		g.fill()
	case increment(g.entropy[:]):
		// Same millisecond (or the clock stepped back): the incremented
		// entropy keeps the order.
	default:
		// The random part overflowed: borrow the next millisecond.
		g.lastMS++
		g.fill()
	}
	var b [16]byte
	for i := range 6 {
		b[i] = byte(g.lastMS >> (40 - 8*i))
	}
	copy(b[6:], g.entropy[:])
	return encodeULID(b)
}

func (g *idGenerator) fill() {
	if _, err := io.ReadFull(g.rand, g.entropy[:]); err != nil {
		// crypto/rand.Reader does not fail on supported platforms; a
		// generator without randomness must not mint colliding IDs.
		panic("schemas: reading random bytes for an ID: " + err.Error())
	}
}

// increment adds one to the big-endian number in b and reports whether it
// did not overflow.
func increment(b []byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return true
		}
	}
	return false
}

// encodeULID writes 128 bits as 26 Crockford base32 characters, most
// significant first (the first character carries the top 3 bits).
func encodeULID(b [16]byte) string {
	var out [ulidLen]byte
	for i := range ulidLen {
		var v byte
		for j := range 5 {
			bit := i*5 + j - 2 // position in b, counted from its top bit
			v <<= 1
			if bit >= 0 && b[bit/8]>>(7-bit%8)&1 == 1 {
				v |= 1
			}
		}
		out[i] = crockford[v]
	}
	return string(out[:])
}

// crockfordValue returns the value of an upper-case Crockford base32 digit.
func crockfordValue(c byte) (byte, bool) {
	v := crockfordTable[c]
	return v - 1, v != 0
}

// crockfordTable maps a byte to its Crockford value plus one; zero marks a
// byte outside the alphabet.
var crockfordTable = func() (t [256]byte) {
	for i := range len(crockford) {
		t[crockford[i]] = byte(i) + 1
	}
	return t
}()

// isULID reports whether s is a ULID in canonical form: 26 upper-case
// Crockford base32 characters, the first at most '7' (128 bits).
func isULID(s string) bool {
	if len(s) != ulidLen || s[0] > '7' {
		return false
	}
	for i := range len(s) {
		if _, ok := crockfordValue(s[i]); !ok {
			return false
		}
	}
	return true
}

// isUUIDv7 reports whether s is a version 7 UUID (RFC 9562) in canonical
// form: lower-case hex, hyphenated 8-4-4-4-12, variant bits 10.
func isUUIDv7(s string) bool {
	if len(s) != uuidLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		case 14:
			if c != '7' {
				return false
			}
		case 19:
			if c != '8' && c != '9' && c != 'a' && c != 'b' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// ValidID reports whether id is an acceptable event id: a ULID in its
// canonical upper-case form, or a UUIDv7 in its canonical lower-case form.
// Other spellings of the same value (lower-case ULIDs, upper-case UUIDs)
// are rejected, because the id is the deduplication key and must have one
// spelling.
func ValidID(id string) bool {
	return isULID(id) || isUUIDv7(id)
}

// IDTime returns the creation time embedded in a ULID or UUIDv7 id (UTC,
// millisecond precision), and false when id is neither.
func IDTime(id string) (time.Time, bool) {
	var ms int64
	switch {
	case isULID(id):
		for i := range 10 { // 10 characters carry the 48-bit timestamp
			v, _ := crockfordValue(id[i])
			ms = ms<<5 | int64(v)
		}
	case isUUIDv7(id):
		for i := range 13 { // "xxxxxxxx-xxxx": 48 bits
			c := id[i]
			switch {
			case c == '-':
				continue
			case c <= '9':
				ms = ms<<4 | int64(c-'0')
			default:
				ms = ms<<4 | int64(c-'a'+10)
			}
		}
	default:
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}
