package roles

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Binaries are the programs whose variables the README documents.
var Binaries = []string{"auditd", "ingestor", "query", "webhook-dispatcher", "siem-forwarder"}

var readmeRow = regexp.MustCompile("(?m)^\\| `(AUDIT_[A-Z_]+)` \\| [^|]* \\| ([^|]*) \\|")

// ReadmeTable returns, for each variable of the README's configuration
// table, the binaries its "Read by" column names ("all" is every binary).
func ReadmeTable(readme []byte) map[string][]string {
	out := map[string][]string{}
	for _, m := range readmeRow.FindAllSubmatch(readme, -1) {
		col := strings.TrimSpace(string(m[2]))
		if col == "all" {
			out[string(m[1])] = slices.Clone(Binaries)
			continue
		}
		for _, b := range strings.Split(col, ",") {
			out[string(m[1])] = append(out[string(m[1])], strings.TrimSpace(b))
		}
	}
	return out
}

// CheckDocumented reports every variable binary reads (cfg, as for Load)
// that the README's table does not list for it, and every variable the
// table lists for binary that it does not read.
func CheckDocumented(readme []byte, binary string, cfg any) error {
	vars, err := Variables(cfg)
	if err != nil {
		return err
	}
	table := ReadmeTable(readme)
	var errs []error
	for _, v := range vars {
		if !slices.Contains(table[v], binary) {
			errs = append(errs, fmt.Errorf("%s is read by %s but the README's configuration table does not list it for %s", v, binary, binary))
		}
	}
	for v, bins := range table {
		if slices.Contains(bins, binary) && !slices.Contains(vars, v) {
			errs = append(errs, fmt.Errorf("the README's configuration table lists %s for %s, which does not read it", v, binary))
		}
	}
	return errors.Join(errs...)
}
