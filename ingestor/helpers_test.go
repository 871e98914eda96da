package ingestor_test

import (
	"encoding/json"
	"strings"
)

func jsonEncode(v any) ([]byte, error) { return json.Marshal(v) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
