package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultRow is one line of the fault table.
type faultRow struct {
	Scenario                        string
	Acked, Stored, Duplicates, Lost int
	Recovery                        time.Duration
	Note                            string
}

var (
	reportMu   sync.Mutex
	reportRows []faultRow
)

// reportPath is where the fault table is written: AUDIT_FAULTS_REPORT
// (make faults sets it to docs/faults.md); empty writes nothing.
func reportPath() string { return os.Getenv("AUDIT_FAULTS_REPORT") }

// faultsLong reports whether the long form of the fault suite runs
// (AUDIT_FAULTS_LONG=1, set by make faults): more events, more kills.
func faultsLong() bool { return os.Getenv("AUDIT_FAULTS_LONG") == "1" }

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// report adds row to the fault table and rewrites it.
func report(t testing.TB, row faultRow) {
	t.Helper()
	t.Logf("%s: acknowledged %d, stored %d, duplicated %d, lost %d, recovery %s; %s",
		row.Scenario, row.Acked, row.Stored, row.Duplicates, row.Lost, seconds(row.Recovery), row.Note)
	path := reportPath()
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	reportRows = append(reportRows, row)
	var b strings.Builder
	b.WriteString(faultsPreamble)
	b.WriteString("| Scenario | Acknowledged | Stored | Duplicated | Lost | Recovery | Notes |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range reportRows {
		rec := "—"
		if r.Recovery > 0 {
			rec = seconds(r.Recovery)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s | %s |\n", r.Scenario, r.Acked, r.Stored, r.Duplicates, r.Lost, rec, r.Note)
	}
	fmt.Fprintf(&b, "\nGenerated %s by `make faults` (Go tests `TestClusterFaults` and `TestFault*` in `auditd/e2e`).\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("fault report: %v", err)
	}
}

const faultsPreamble = `# Fault injection results

This file is written by the fault-injection suite (` + "`make faults`" + `); do not edit it by hand.
Each row is one scenario run against the real parts: NATS servers with JetStream (in the test
process, or inside the real ` + "`auditd`" + ` binary run as a subprocess), the embedded ClickHouse engine,
the producer library, and real HTTP and syslog receivers.

- **Acknowledged**: events whose ` + "`Emit`" + ` returned no error (JetStream stored them).
- **Stored**: acknowledged events that reads (` + "`eventstore.Store.Stream`" + ` or the export API) return.
- **Duplicated**: extra copies of acknowledged events returned by reads (0 means each once).
- **Lost**: acknowledged events that reads never return. Must be 0.
- **Recovery**: from the fault (or its end) to the first successful ` + "`Emit`" + ` started after it, or
  the figure the notes name.

`
