package schemas

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestLimitsDocumented keeps LIMITS.md in step with the constants: every
// constant must appear in the table on a row that states its value.
func TestLimitsDocumented(t *testing.T) {
	doc, err := os.ReadFile("LIMITS.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		for _, cell := range strings.Split(line, "|") {
			for _, name := range strings.Split(cell, ",") {
				if name = strings.Trim(strings.TrimSpace(name), "`"); name != "" {
					rows[name] = line
				}
			}
		}
	}
	for name, value := range map[string]string{
		"MaxEventBytes":       strconv.Itoa(MaxEventBytes),
		"MaxOrgIDLen":         strconv.Itoa(MaxOrgIDLen),
		"MaxActionLen":        strconv.Itoa(MaxActionLen),
		"MaxCategoryLen":      strconv.Itoa(MaxCategoryLen),
		"MaxActorIDLen":       strconv.Itoa(MaxActorIDLen),
		"MaxNameLen":          strconv.Itoa(MaxNameLen),
		"MaxEmailLen":         strconv.Itoa(MaxEmailLen),
		"MaxUserAgentLen":     strconv.Itoa(MaxUserAgentLen),
		"MaxTargets":          strconv.Itoa(MaxTargets),
		"MaxTargetTypeLen":    strconv.Itoa(MaxTargetTypeLen),
		"MaxTargetIDLen":      strconv.Itoa(MaxTargetIDLen),
		"MaxReasonLen":        strconv.Itoa(MaxReasonLen),
		"MaxDetailsKeys":      strconv.Itoa(MaxDetailsKeys),
		"MaxDetailsKeyLen":    strconv.Itoa(MaxDetailsKeyLen),
		"MaxDetailsStringLen": strconv.Itoa(MaxDetailsStringLen),
		"MaxDetailsArrayLen":  strconv.Itoa(MaxDetailsArrayLen),
		"MaxDetailsDepth":     strconv.Itoa(MaxDetailsDepth),
		"MaxContextLen":       strconv.Itoa(MaxContextLen),
		"MinOccurredYear":     strconv.Itoa(MinOccurredYear),
		"MaxFutureSkew":       strconv.Itoa(int(MaxFutureSkew.Hours())) + " hours",
	} {
		row, ok := rows[name]
		if !ok {
			t.Errorf("%s is not in LIMITS.md", name)
			continue
		}
		if !strings.Contains(row, value) {
			t.Errorf("LIMITS.md row for %s does not state %s:\n%s", name, value, row)
		}
	}
}
