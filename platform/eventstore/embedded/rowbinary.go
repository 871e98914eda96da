package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/takumo/audit/platform/eventstore"
)

// appendRecord appends rec in RowBinary, columns in eventstore.Columns
// order.
func appendRecord(b []byte, r *eventstore.Record) []byte {
	b = appendString(b, r.ID)
	b = appendString(b, r.OrgID)
	b = appendString(b, r.Action)
	b = appendString(b, r.Category)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.OccurredAt.UnixMilli()))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.ReceivedAt.UnixMilli()))
	b = appendString(b, r.ActorType)
	b = appendString(b, r.ActorID)
	b = appendString(b, r.ActorName)
	b = appendString(b, r.ActorEmail)
	b = appendString(b, r.ActorIP)
	b = appendString(b, r.ActorUserAgent)
	b = appendStrings(b, r.TargetTypes)
	b = appendStrings(b, r.TargetIDs)
	b = appendStrings(b, r.TargetNames)
	b = appendString(b, r.Outcome)
	b = appendString(b, r.Reason)
	b = appendString(b, r.Details)
	b = appendString(b, r.RequestID)
	b = appendString(b, r.TraceID)
	b = appendString(b, r.Source)
	b = binary.AppendUvarint(b, uint64(len(r.Raw)))
	b = append(b, r.Raw...)
	b = binary.LittleEndian.AppendUint64(b, r.StreamSeq)
	b = binary.LittleEndian.AppendUint16(b, r.RetentionDays)
	if !r.Logged {
		return append(b, 1) // NULL
	}
	b = append(b, 0)
	return binary.LittleEndian.AppendUint64(b, r.LogIndex)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// recordSize estimates the RowBinary size of rec, to size buffers.
func recordSize(r *eventstore.Record) int {
	n := 73 + len(r.ID) + len(r.OrgID) + len(r.Action) + len(r.Category) +
		len(r.ActorType) + len(r.ActorID) + len(r.ActorName) + len(r.ActorEmail) + len(r.ActorIP) + len(r.ActorUserAgent) +
		len(r.Outcome) + len(r.Reason) + len(r.Details) + len(r.RequestID) + len(r.TraceID) + len(r.Source) + len(r.Raw)
	for i := range r.TargetIDs {
		n += 6 + len(r.TargetTypes[i]) + len(r.TargetIDs[i]) + len(r.TargetNames[i])
	}
	return n
}

// errShort reports a result that ended inside a value.
var errShort = errors.New("embedded: RowBinary result truncated")

// reader decodes RowBinary.
type reader struct {
	b   []byte
	off int
}

func (r *reader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		return 0, errShort
	}
	r.off += n
	return v, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, errShort
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v, nil
}

func (r *reader) string() (string, error) {
	n, err := r.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(len(r.b)) {
		return "", errShort
	}
	v, err := r.bytes(int(n))
	return string(v), err
}

// decoder reads one value of a column type.
type decoder func(r *reader) (any, error)

// decoderFor returns the decoder for a ClickHouse type name as
// RowBinaryWithNamesAndTypes reports it.
func decoderFor(t string) (decoder, error) {
	switch {
	case t == "String" || t == "LowCardinality(String)":
		return func(r *reader) (any, error) { return r.string() }, nil
	case t == "UInt8" || t == "Bool":
		return fixed(1, func(b []byte) any { return b[0] }), nil
	case t == "UInt16":
		return fixed(2, func(b []byte) any { return binary.LittleEndian.Uint16(b) }), nil
	case t == "UInt32":
		return fixed(4, func(b []byte) any { return binary.LittleEndian.Uint32(b) }), nil
	case t == "UInt64":
		return fixed(8, func(b []byte) any { return binary.LittleEndian.Uint64(b) }), nil
	case t == "Int8":
		return fixed(1, func(b []byte) any { return int8(b[0]) }), nil
	case t == "Int16":
		return fixed(2, func(b []byte) any { return int16(binary.LittleEndian.Uint16(b)) }), nil
	case t == "Int32":
		return fixed(4, func(b []byte) any { return int32(binary.LittleEndian.Uint32(b)) }), nil
	case t == "Int64":
		return fixed(8, func(b []byte) any { return int64(binary.LittleEndian.Uint64(b)) }), nil
	case t == "Float64":
		return fixed(8, func(b []byte) any { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }), nil
	case t == "DateTime" || strings.HasPrefix(t, "DateTime("):
		return fixed(4, func(b []byte) any { return time.Unix(int64(binary.LittleEndian.Uint32(b)), 0).UTC() }), nil
	case strings.HasPrefix(t, "DateTime64("):
		args := strings.SplitN(strings.TrimSuffix(strings.TrimPrefix(t, "DateTime64("), ")"), ",", 2)
		p, err := strconv.Atoi(strings.TrimSpace(args[0]))
		if err != nil || p < 0 || p > 9 {
			return nil, fmt.Errorf("embedded: unsupported type %s", t)
		}
		scale := int64(math.Pow10(9 - p))
		return fixed(8, func(b []byte) any {
			v := int64(binary.LittleEndian.Uint64(b))
			return time.Unix(0, 0).Add(time.Duration(v * scale)).UTC()
		}), nil
	case strings.HasPrefix(t, "Array(") && strings.HasSuffix(t, ")"):
		inner := t[len("Array(") : len(t)-1]
		if inner != "String" && inner != "LowCardinality(String)" {
			return nil, fmt.Errorf("embedded: unsupported type %s", t)
		}
		return func(r *reader) (any, error) {
			n, err := r.uvarint()
			if err != nil {
				return nil, err
			}
			if n > uint64(len(r.b)) {
				return nil, errShort
			}
			out := make([]string, n)
			for i := range out {
				if out[i], err = r.string(); err != nil {
					return nil, err
				}
			}
			return out, nil
		}, nil
	}
	return nil, fmt.Errorf("embedded: unsupported type %s", t)
}

func fixed(n int, conv func([]byte) any) decoder {
	return func(r *reader) (any, error) {
		b, err := r.bytes(n)
		if err != nil {
			return nil, err
		}
		return conv(b), nil
	}
}

// rows iterates over a RowBinaryWithNamesAndTypes result.
type rows struct {
	r     reader
	names []string
	decs  []decoder
	cur   []any
	err   error
}

var _ eventstore.Rows = (*rows)(nil)

func newRows(out []byte) (*rows, error) {
	rs := &rows{r: reader{b: out}}
	if len(out) == 0 { // statements without a result set
		return rs, nil
	}
	n, err := rs.r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > 1024 {
		return nil, fmt.Errorf("embedded: result header claims %d columns", n)
	}
	rs.names = make([]string, n)
	for i := range rs.names {
		if rs.names[i], err = rs.r.string(); err != nil {
			return nil, err
		}
	}
	rs.decs = make([]decoder, n)
	for i := range rs.decs {
		t, err := rs.r.string()
		if err != nil {
			return nil, err
		}
		if rs.decs[i], err = decoderFor(t); err != nil {
			return nil, fmt.Errorf("column %s: %w", rs.names[i], err)
		}
	}
	return rs, nil
}

func (rs *rows) Next() bool {
	if rs.err != nil || rs.r.off >= len(rs.r.b) {
		rs.cur = nil
		return false
	}
	cur := make([]any, len(rs.decs))
	for i, d := range rs.decs {
		v, err := d(&rs.r)
		if err != nil {
			rs.err = fmt.Errorf("column %s: %w", rs.names[i], err)
			rs.cur = nil
			return false
		}
		cur[i] = v
	}
	rs.cur = cur
	return true
}

func (rs *rows) Scan(dest ...any) error {
	if rs.cur == nil {
		return errors.New("embedded: Scan called without a row")
	}
	if len(dest) != len(rs.cur) {
		return fmt.Errorf("embedded: Scan got %d destinations for %d columns", len(dest), len(rs.cur))
	}
	for i, d := range dest {
		if err := assign(d, rs.cur[i]); err != nil {
			return fmt.Errorf("embedded: column %s: %w", rs.names[i], err)
		}
	}
	return nil
}

func (rs *rows) Err() error   { return rs.err }
func (rs *rows) Close() error { rs.cur = nil; rs.r.b = nil; return nil }

// assign stores v into the pointer d, converting integers when the value
// fits.
func assign(d, v any) error {
	switch d := d.(type) {
	case *any:
		*d = v
		return nil
	case *string:
		if s, ok := v.(string); ok {
			*d = s
			return nil
		}
	case *[]string:
		if s, ok := v.([]string); ok {
			*d = s
			return nil
		}
	case *time.Time:
		if t, ok := v.(time.Time); ok {
			*d = t
			return nil
		}
	case *float64:
		if f, ok := v.(float64); ok {
			*d = f
			return nil
		}
	case *uint64, *uint32, *uint16, *uint8, *int64, *int32, *int:
		return assignInt(d, v)
	}
	return fmt.Errorf("cannot scan %T into %T", v, d)
}

// intValue splits an integer value into magnitude and sign.
func intValue(v any) (mag uint64, neg, ok bool) {
	var i int64
	switch v := v.(type) {
	case uint8:
		return uint64(v), false, true
	case uint16:
		return uint64(v), false, true
	case uint32:
		return uint64(v), false, true
	case uint64:
		return v, false, true
	case int8:
		i = int64(v)
	case int16:
		i = int64(v)
	case int32:
		i = int64(v)
	case int64:
		i = v
	default:
		return 0, false, false
	}
	if i < 0 {
		return uint64(-(i + 1)) + 1, true, true
	}
	return uint64(i), false, true
}

func assignInt(d, v any) error {
	u, neg, ok := intValue(v)
	if !ok {
		return fmt.Errorf("cannot scan %T into %T", v, d)
	}
	signed := func(limit uint64) (int64, bool) {
		if neg {
			if u > limit+1 {
				return 0, false
			}
			return -int64(u-1) - 1, true
		}
		if u > limit {
			return 0, false
		}
		return int64(u), true
	}
	fits := true
	switch d := d.(type) {
	case *uint64:
		fits = !neg
		*d = u
	case *uint32:
		fits = !neg && u <= math.MaxUint32
		*d = uint32(u)
	case *uint16:
		fits = !neg && u <= math.MaxUint16
		*d = uint16(u)
	case *uint8:
		fits = !neg && u <= math.MaxUint8
		*d = uint8(u)
	case *int64:
		*d, fits = signed(math.MaxInt64)
	case *int:
		var i int64
		i, fits = signed(math.MaxInt)
		*d = int(i)
	case *int32:
		var i int64
		i, fits = signed(math.MaxInt32)
		*d = int32(i)
	}
	if !fits {
		return fmt.Errorf("value %v out of range for %T", v, d)
	}
	return nil
}
