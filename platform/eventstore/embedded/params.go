package embedded

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
)

// escaper writes a string in the engine's escaped text format, which is how
// it parses a parameter's value: a backslash starts an escape, and tab,
// newline, carriage return and NUL would end or corrupt the field.
var escaper = strings.NewReplacer(
	`\`, `\\`,
	"\t", `\t`,
	"\n", `\n`,
	"\r", `\r`,
	"\x00", `\0`,
)

// paramText renders a parameter value as the engine parses it for its
// {name:Type} placeholder. It is the only place a value is turned into text
// for the engine, and the text is passed as a bound parameter, never spliced
// into SQL.
func paramText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return escaper.Replace(v), nil
	case []byte:
		return escaper.Replace(string(v)), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case uint:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case uint32:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint16:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint8:
		return strconv.FormatUint(uint64(v), 10), nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	case time.Time:
		return v.UTC().Format("2006-01-02 15:04:05.000000000"), nil
	default:
		return "", fmt.Errorf("embedded: unsupported parameter type %T", v)
	}
}

func chdbParams(ps []eventstore.Param) ([]chdb.Param, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]chdb.Param, len(ps))
	for i, p := range ps {
		t, err := paramText(p.Value)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", p.Name, err)
		}
		out[i] = chdb.Param{Name: p.Name, Value: t}
	}
	return out, nil
}
