package dispatcher_test

import (
	"strings"
	"testing"

	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
)

// The streams' sizes come from the configuration, and sizes a stream
// could not work with are refused with the others' problems.
func TestConfigSizesTheStreams(t *testing.T) {
	cfg := dispatcher.Config{DeliveriesMaxBytes: 3 << 20, AttemptLogMaxBytes: 2 << 20}
	cfg.SetDefaults()
	objs, err := dispatcher.TopologyObjects(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, s := range objs.Streams {
		got[s.Name] = s.MaxBytes
	}
	if got[dispatcher.DeliveriesStream] != 3<<20 || got[dispatcher.AttemptsStream] != 2<<20 {
		t.Errorf("stream sizes %v", got)
	}

	var def dispatcher.Config
	def.SetDefaults()
	if def.DeliveriesMaxBytes != 4<<30 || def.AttemptLogMaxBytes != 1<<30 {
		t.Errorf("default sizes %d and %d", def.DeliveriesMaxBytes, def.AttemptLogMaxBytes)
	}
	bad := def
	bad.DeliveriesMaxBytes, bad.AttemptLogMaxBytes = -5, 1000
	err = bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "delivery queue size") || !strings.Contains(err.Error(), "attempt log size") {
		t.Errorf("Validate: %v", err)
	}
}
