package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/tlogapi"
)

// logWatch is what each org's customer keeps of its log while auditd is
// killed and restarted: every signed checkpoint it was served, in the
// order it was served.
type logWatch struct {
	a    *auditdBinary
	key  []byte
	mu   sync.Mutex
	logs map[string]*watchedLog
	stop chan struct{}
	done chan struct{}
}

type watchedLog struct {
	vs     *tlog.Verifiers
	origin string
	cps    []tlog.Checkpoint
	shrunk []string // "size a then size b" where a later checkpoint was smaller
}

// get is GET path with a read token of org; nil when auditd does not
// answer 200 (it may be down between a kill and its restart).
func (w *logWatch) get(org, path string) []byte {
	tok, err := auditapi.Mint(w.key, auditapi.TokenSpec{OrgID: org, Subject: "customer", Permissions: []string{auditapi.PermRead}, TTL: time.Hour}, time.Now())
	if err != nil {
		return nil
	}
	req, _ := http.NewRequest("GET", "http://"+w.a.httpAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		return nil
	}
	return b
}

// watchLogs pins each org's verifier keys and origin, then polls each
// org's latest checkpoint until stopped.
func watchLogs(t *testing.T, a *auditdBinary, orgs []string) *logWatch {
	t.Helper()
	key, err := auditapi.DevSecret(a.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	w := &logWatch{a: a, key: key, logs: map[string]*watchedLog{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, org := range orgs {
		var k tlogapi.Keys
		if err := json.Unmarshal(w.get(org, "/v1/integrity/keys"), &k); err != nil {
			t.Fatalf("%s: keys: %v", org, err)
		}
		vs, err := tlog.NewVerifiers(k.All...)
		if err != nil {
			t.Fatal(err)
		}
		w.logs[org] = &watchedLog{vs: vs, origin: k.Origin}
	}
	go func() {
		defer close(w.done)
		for {
			for _, org := range orgs {
				w.poll(t, org)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
		}
	}()
	return w
}

// poll keeps org's latest checkpoint if it is new; it returns it.
func (w *logWatch) poll(t *testing.T, org string) (tlog.Checkpoint, bool) {
	note := w.get(org, "/v1/integrity/checkpoint")
	if note == nil {
		return tlog.Checkpoint{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.logs[org]
	cp, err := l.vs.OpenCheckpoint(note, l.origin)
	if err != nil {
		t.Errorf("%s: checkpoint served does not verify: %v", org, err)
		return tlog.Checkpoint{}, false
	}
	if n := len(l.cps); n > 0 {
		last := l.cps[n-1]
		if last.Size == cp.Size && bytes.Equal(last.Root, cp.Root) {
			return cp, true
		}
		if cp.Size < last.Size {
			l.shrunk = append(l.shrunk, fmt.Sprintf("size %d then size %d", last.Size, cp.Size))
		}
	}
	l.cps = append(l.cps, cp)
	return cp, true
}

// check stops the polling and checks each org's log after the kills:
// a checkpoint of the whole log (want[org] events) is signed; the
// integrity export holds log indices 0..n-1, each once, one per stored
// event (re-read with stored), at least every id of want; it verifies against the latest checkpoint
// with every earlier checkpoint served as a prefix of the same tree.
// It returns how many checkpoints were compared.
func (w *logWatch) check(t *testing.T, want map[string]map[string]bool, stored func(org string) map[string]bool) int {
	t.Helper()
	close(w.stop)
	<-w.done
	compared := 0
	for org, ids := range want {
		n := uint64(len(ids))
		l := w.logs[org]
		// Events published by Emit calls cut short when the load stopped
		// (not acknowledged) may be stored after the first read: the
		// stored events are read again until the log and they agree.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if cp, ok := w.poll(t, org); ok && cp.Size == n {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: no checkpoint of the whole log (%d events) within 1 min; the latest: %d", org, n, l.cps[len(l.cps)-1].Size)
				break
			}
			ids = stored(org)
			n = uint64(len(ids))
		}
		for id := range want[org] {
			if !ids[id] {
				t.Errorf("%s: event %s no longer stored", org, id)
			}
		}
		if len(l.shrunk) > 0 {
			t.Errorf("%s: a checkpoint served after a larger one: %v", org, l.shrunk)
		}
		export := w.get(org, "/v1/integrity/export")
		if export == nil {
			t.Fatalf("%s: no integrity export", org)
		}
		seen := make([]string, n)
		sc := bufio.NewScanner(bytes.NewReader(export))
		sc.Buffer(nil, 1<<20)
		lines := 0
		for sc.Scan() {
			x, err := tlog.ParseEntry(sc.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			lines++
			switch {
			case x.LogIndex == nil:
				t.Errorf("%s: event %s without a log index", org, x.Event.ID)
			case *x.LogIndex >= n:
				t.Errorf("%s: event %s at index %d of a log of %d", org, x.Event.ID, *x.LogIndex, n)
			case seen[*x.LogIndex] != "":
				t.Errorf("%s: index %d given to %s and %s", org, *x.LogIndex, seen[*x.LogIndex], x.Event.ID)
			default:
				seen[*x.LogIndex] = x.Event.ID
			}
			if !ids[x.Event.ID] {
				t.Errorf("%s: event %s in the log is not one stored", org, x.Event.ID)
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		in := map[string]bool{}
		for i, id := range seen {
			if id == "" {
				t.Errorf("%s: no event at index %d", org, i)
			}
			in[id] = true
		}
		for id := range ids {
			if !in[id] {
				t.Errorf("%s: stored event %s not in the log", org, id)
			}
		}
		if uint64(lines) != n {
			t.Errorf("%s: %d export lines for %d stored events", org, lines, n)
		}
		latest := l.cps[len(l.cps)-1]
		rep, err := tlog.VerifyExport(bytes.NewReader(export), tlog.VerifyOptions{Checkpoint: latest, Earlier: l.cps[:len(l.cps)-1]})
		if err != nil {
			t.Fatalf("%s: verify: %v", org, err)
		}
		if rep.Problem != nil || rep.Events != n {
			t.Errorf("%s: %d checkpoints served: %s", org, len(l.cps), rep)
		}
		compared += len(l.cps)
	}
	return compared
}
