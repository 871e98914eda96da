package ingestapi

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/takumo/audit/platform/auditapi"
)

// The fast path cuts a body exactly as encoding/json decodes it, and
// leaves every other body to the slow path.
func TestSplitBatchAgreesWithDecode(t *testing.T) {
	ev := `{"action":"member.invited","org_id":"org_1","details":{"a":[1,{"b":"]},\"{"}],"c":null},"x":"\\\"}"}`
	many := `{"events":[` + strings.Repeat(`{"a":1},`, auditapi.MaxIngestEvents) + `{"a":1}]}`
	bodies := []string{
		`{"events":[` + ev + `]}`,
		" \n{ \"events\" :\t[ " + ev + " , " + ev + " ] }\r\n",
		`{"events":[1,"s",true,null,[],{}]}`,
		`{"events":[1]}`,
		`{"events":["a\"]"]}`,
		`{"events":[]}`,
		`{"events":null}`,
		`{"Events":[{}]}`,
		`{"ev\u0065nts":[{}]}`,
		`{"events":[{}],"events":[{},{}]}`,
		`{"events":[{}],"other":1}`,
		`{"other":1,"events":[{}]}`,
		`{"events":[{}]} {}`,
		`{"events":[{}]`,
		`{"events":[{},]}`,
		`{"events":[{} {}]}`,
		`[{"events":[]}]`,
		``,
		`{"events":[{"a":tru}]}`,
		many,
	}
	for i, b := range bodies {
		var fast auditapi.IngestRequest
		ok := splitBatch([]byte(b), &fast)
		var slow auditapi.IngestRequest
		e := decodeBatchSlow([]byte(b), &slow)
		name := fmt.Sprintf("body %d %.60q", i, b)
		if ok && e != nil {
			t.Errorf("%s: the fast path accepted what decoding refuses (%v)", name, e)
		}
		if ok && !reflect.DeepEqual(fast.Events, slow.Events) {
			t.Errorf("%s: cut %q, decoding gives %q", name, fast.Events, slow.Events)
		}
		if !ok && e == nil && i < 6 {
			t.Errorf("%s: the fast path left a plain body to the slow one", name)
		}
	}
}
