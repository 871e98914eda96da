package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/producer"
)

// auditdBinary is the real single binary, run as a subprocess with its
// embedded NATS server and ClickHouse engine.
type auditdBinary struct {
	bin, dataDir, httpAddr, natsAddr string
	env                              []string // added to the environment
	cmd                              *exec.Cmd
	exited                           chan struct{}
}

func (a *auditdBinary) start(t testing.TB) time.Duration {
	t.Helper()
	lib := os.Getenv("AUDIT_CHDB_LIB")
	if lib == "" {
		lib = chdb.DefaultLibPath()
	}
	cmd := exec.Command(a.bin)
	cmd.Env = append(os.Environ(), "AUDIT_DATA_DIR="+a.dataDir, "AUDIT_HTTP_ADDR="+a.httpAddr, "AUDIT_NATS_LISTEN="+a.natsAddr,
		"AUDIT_CHDB_LIB="+lib, "AUDIT_DEFAULT_PLAN=enterprise", "AUDIT_DEMO=false", "AUDIT_LOG_LEVEL=error",
		"AUDIT_INGEST_ACK_WAIT=5s", "AUDIT_INGEST_BATCH_WAIT=50ms")
	cmd.Env = append(cmd.Env, a.env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.cmd, a.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(a.exited) }()
	waitFor(t, "auditd ready", 90*time.Second, func() bool {
		res, err := http.Get("http://" + a.httpAddr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return time.Since(start)
}

// kill sends SIGKILL and waits for the process to end.
func (a *auditdBinary) kill() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
}

// stop sends SIGTERM and waits.
func (a *auditdBinary) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(40 * time.Second):
		a.kill()
	}
}

var pendingMetric = regexp.MustCompile(`(?m)^audit_consumer_(?:pending|ack_pending)\{consumer="ingestor"\} (\d+)`)

// drained reports whether the ingestor's consumer has nothing pending,
// from /metrics.
func (a *auditdBinary) drained() bool {
	res, err := http.Get("http://" + a.httpAddr + "/metrics")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := pendingMetric.FindAllSubmatch(b, -1)
	if len(m) != 2 {
		return false
	}
	return string(m[0][1]) == "0" && string(m[1][1]) == "0"
}

// exported reads every event of org through the export API and counts
// each id.
func (a *auditdBinary) exported(t testing.TB, org string, into map[string]int) {
	t.Helper()
	key, err := auditapi.DevSecret(a.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: org, Subject: "faults", Permissions: []string{auditapi.PermExport}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+a.httpAddr+"/v1/export?format=ndjson", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("export %s = %d", org, res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		into[ev.ID]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// The auditd binary is killed with SIGKILL three times while producers
// in other processes' place (their own connections, the producer's
// credentials) emit; it is started again at once each time. Every
// acknowledged event is read back exactly once through the export API,
// and each org's log (sealed by the ingestor) holds every stored event
// at one index of 0..n-1, the indices dense and unique, and verifies
// against its latest checkpoint with every checkpoint a customer polling
// it was served during the kills as a prefix of the same tree.
// Building the binary takes a while, so this runs in make faults only.
func TestFaultKillAuditd(t *testing.T) {
	if !faultsLong() {
		t.Skip("kill -9 of the auditd binary: make faults (AUDIT_FAULTS_LONG=1)")
	}
	dir := t.TempDir()
	a := &auditdBinary{bin: filepath.Join(dir, "auditd"), dataDir: filepath.Join(dir, "data"), httpAddr: freeAddr(t), natsAddr: freeAddr(t),
		env: []string{"AUDIT_TLOG_CHECKPOINT_INTERVAL=500ms"}} // checkpoints signed between the kills
	build := exec.Command("go", "build", "-o", a.bin, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build auditd: %v", err)
	}
	a.start(t)
	defer a.stop()
	id, err := natsauth.LoadFile(natsauth.Producer, filepath.Join(a.dataDir, "nats-auth", natsauth.SeedFile(natsauth.Producer)))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := natsauth.Options(id)
	if err != nil {
		t.Fatal(err)
	}
	connect := func() jetstream.JetStream {
		nc, err := nats.Connect("nats://"+a.natsAddr, append(auth, producer.ConnectOptions()...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	logs := watchLogs(t, a, faultOrgs)
	l := startLoad(t, 4, connect, generators(4, faultOrgs), time.Minute, time.Millisecond)
	var worstResume, worstStart time.Duration
	const kills = 3
	for range kills {
		time.Sleep(3 * time.Second)
		at := time.Now()
		a.kill()
		worstStart = max(worstStart, a.start(t))
		r, err := l.resumedAfter(at, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		worstResume = max(worstResume, r)
	}
	time.Sleep(time.Second)
	l.Stop()
	waitFor(t, "auditd to store what it holds", 2*time.Minute, a.drained)
	stored := map[string]int{}
	byOrg := map[string]map[string]bool{}
	for _, o := range faultOrgs {
		of := map[string]int{}
		a.exported(t, o, of)
		byOrg[o] = map[string]bool{}
		for id, n := range of {
			stored[id] += n
			byOrg[o][id] = true
		}
	}
	res := account(l.ids(), stored)
	if res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("kill -9: %+v", res)
	}
	// The log of each org: dense, unique indices over every stored
	// (hence every acknowledged) event, and every checkpoint served
	// across the kills a prefix of the final tree.
	cps := logs.check(t, byOrg, func(org string) map[string]bool {
		of, ids := map[string]int{}, map[string]bool{}
		a.exported(t, org, of)
		for id := range of {
			ids[id] = true
		}
		return ids
	})
	report(t, faultRow{Scenario: fmt.Sprintf("auditd binary killed with SIGKILL %d× under load", kills),
		Acked: res.Acked, Stored: res.Stored, Duplicates: res.Duplicates, Lost: res.Lost, Recovery: worstResume,
		Note: fmt.Sprintf("embedded NATS and ClickHouse; 4 producers over TCP, Emit deadline 1 min: %d calls failed; restart to ready at most %s; recovery: kill → first Emit started after it succeeded (restart included); counted through /v1/export; the log: indices dense and unique, %d checkpoints served across the kills consistent with the final export", l.failed, seconds(worstStart), cps)})
}
