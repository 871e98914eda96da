// Package transporttest is the conformance suite every SIEM transport
// must pass. A transport's test calls Run once per configuration; the
// suite starts a real receiver of the configuration's protocol (a TCP or
// TLS listener, a UDP socket, an HTTPS server), reads what arrives with
// its own parser of the protocol, and checks delivery, framing, large
// records, reconnection, errors, cancellation, Close and concurrent use.
package transporttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sender is what the forwarder uses of a transport.
type Sender interface {
	Send(ctx context.Context, records [][]byte) error
	Close() error
}

// Protocol is what the suite's receiver speaks.
type Protocol int

// Protocols.
const (
	// OctetCounting is syslog on a stream, RFC 6587 octet counting.
	OctetCounting Protocol = iota
	// LF is syslog on a stream, each record ended by LF.
	LF
	// Datagram is syslog over UDP, one record per datagram.
	Datagram
	// HEC is the Splunk HTTP Event Collector over HTTPS: POST
	// HECPath with "Authorization: Splunk <HECToken>", JSON envelopes
	// one per line.
	HEC
	// NDJSON is a generic HTTPS endpoint: POST NDJSONPath with
	// AuthHeader: AuthValue, records one per line.
	NDJSON
)

// What HTTP receivers require of a request.
const (
	HECPath     = "/services/collector/event"
	HECToken    = "11111111-2222-3333-4444-555555555555"
	NDJSONPath  = "/ingest"
	AuthHeader  = "X-Api-Key"
	AuthValue   = "transporttest-key"
	ContentType = "application/x-ndjson"
)

// Target is where New must send: Address (host:port) for syslog, URL for
// HTTPS (the base URL for HEC, the endpoint for NDJSON), and a TLS
// configuration that trusts the receiver's certificate.
type Target struct {
	Address string
	URL     string
	TLS     *tls.Config
}

// Config is one transport configuration under test.
type Config struct {
	Protocol Protocol
	// TLS runs a stream receiver over TLS; HTTPS receivers always use it.
	TLS bool
	// New returns a sender to target.
	New func(t *testing.T, target Target) (Sender, error)
	// Op is the word every error of the transport starts with, e.g.
	// "syslognet"; it must appear exactly once.
	Op string
	// MaxRecord is the size of the large records (default 64 KiB).
	MaxRecord int
	// ClosedErr, when set, is what Send returns after Close.
	ClosedErr error
}

// Run runs the suite for one configuration.
func Run(t *testing.T, cfg Config) {
	if cfg.MaxRecord == 0 {
		cfg.MaxRecord = 64 << 10
	}
	cert := localCert()
	s := &suite{cfg: cfg, cert: cert}
	t.Run("DeliversBatchesInOrder", s.testInOrder)
	t.Run("FramingExact", s.testFraming)
	t.Run("LargeRecords", s.testLarge)
	if cfg.Protocol != Datagram { // no connection, no delivery guarantee
		t.Run("ReconnectAfterRestart", s.testReconnect)
		t.Run("ReceiverDown", s.testDown)
		t.Run("CancelStalled", s.testCancelStalled)
	}
	t.Run("CancelledContext", s.testCancelled)
	t.Run("CloseIdempotent", s.testClose)
	t.Run("Concurrent", s.testConcurrent)
}

type suite struct {
	cfg  Config
	cert tls.Certificate
}

// start returns a receiver and a sender to it, closed when t ends.
func (s *suite) start(t *testing.T) (*receiver, Sender) {
	r := startReceiver(t, s.cfg.Protocol, s.cfg.TLS, s.cert)
	return r, s.sender(t, r.addr)
}

func (s *suite) sender(t *testing.T, addr string) Sender {
	t.Helper()
	leaf, err := x509.ParseCertificate(s.cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	target := Target{Address: addr, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	switch s.cfg.Protocol {
	case HEC:
		target.URL = "https://" + addr
	case NDJSON:
		target.URL = "https://" + addr + NDJSONPath
	}
	snd, err := s.cfg.New(t, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = snd.Close() })
	return snd
}

// hostile are record contents that trip careless framing: digits and a
// space first (an octet count lookalike), unicode, quotes, backslashes,
// tabs, NUL, and a syslog header. No record holds CR or LF: the formats
// never emit them.
var hostile = []string{
	"<110>1 2026-12-01T00:00:00.000Z host takumo-audit - audit@32473 - first",
	"12 looks like a length",
	"ünïcode ✓ 日本語 🙂",
	`quotes " and \ backslash \n not a newline`,
	"tab\there and NUL\x00 inside",
	"  leading and trailing spaces  ",
	"0",
}

// record returns the record to send: the content as is for syslog and
// NDJSON, in a HEC envelope for HEC.
func (s *suite) record(content string) []byte {
	if s.cfg.Protocol == HEC {
		b, _ := json.Marshal(map[string]any{"event": content, "sourcetype": "takumo:audit"})
		return b
	}
	return []byte(content)
}

func (s *suite) batch(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = s.record(fmt.Sprintf("%s-%d %s", prefix, i, hostile[i%len(hostile)]))
	}
	return out
}

func strs(b [][]byte) []string {
	out := make([]string, len(b))
	for i, r := range b {
		out[i] = string(r)
	}
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("received %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d = %.200q, want %.200q", i, got[i], want[i])
		}
	}
}

func (s *suite) testInOrder(t *testing.T) {
	r, snd := s.start(t)
	var want []string
	for b := range 5 {
		batch := s.batch("b"+strconv.Itoa(b), 7)
		if err := snd.Send(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		want = append(want, strs(batch)...)
	}
	r.wait(t, len(want))
	time.Sleep(50 * time.Millisecond) // nothing more may arrive
	equal(t, r.wait(t, len(want)), want)
}

// testFraming checks the bytes on the wire against the protocol,
// encoded here independently of the transport.
func (s *suite) testFraming(t *testing.T) {
	r, snd := s.start(t)
	batch := s.batch("framing", len(hostile))
	if err := snd.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	r.wait(t, len(batch))
	raw := r.rawFrames()
	switch s.cfg.Protocol {
	case OctetCounting, LF:
		var want strings.Builder
		for _, rec := range batch {
			if s.cfg.Protocol == LF {
				want.Write(rec)
				want.WriteByte('\n')
			} else {
				fmt.Fprintf(&want, "%d %s", len(rec), rec)
			}
		}
		if got := strings.Join(raw, ""); got != want.String() {
			t.Errorf("wire = %q\nwant   %q", got, want.String())
		}
	case Datagram:
		equal(t, raw, strs(batch))
	case HEC, NDJSON:
		var want strings.Builder
		for _, rec := range batch {
			want.Write(rec)
			want.WriteByte('\n')
		}
		if len(raw) != 1 || raw[0] != want.String() {
			t.Errorf("bodies = %q, want one body %q", raw, want.String())
		}
		reqs := r.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		req := reqs[0]
		if req.Method != "POST" {
			t.Errorf("method %s, want POST", req.Method)
		}
		if s.cfg.Protocol == HEC {
			if req.URL.Path != HECPath || req.Header.Get("Authorization") != "Splunk "+HECToken {
				t.Errorf("HEC request %s with Authorization %q", req.URL.Path, req.Header.Get("Authorization"))
			}
		} else if req.URL.Path != NDJSONPath || req.Header.Get(AuthHeader) != AuthValue || req.Header.Get("Content-Type") != ContentType {
			t.Errorf("request %s with headers %v", req.URL.Path, req.Header)
		}
	}
}

func (s *suite) large(tag string) []byte {
	over := 0
	if s.cfg.Protocol == HEC {
		over = len(s.record(""))
	}
	var b strings.Builder
	for i := 0; b.Len() < s.cfg.MaxRecord-over-32; i++ {
		fmt.Fprintf(&b, "%s %08d ", tag, i)
	}
	return s.record(b.String()[:s.cfg.MaxRecord-over-32])
}

func (s *suite) testLarge(t *testing.T) {
	r, snd := s.start(t)
	batches := [][][]byte{
		{s.record("small before"), s.large("L1"), s.record("small after")},
		{s.large("L2")},
	}
	var want []string
	for _, b := range batches {
		if err := snd.Send(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		want = append(want, strs(b)...)
	}
	equal(t, r.wait(t, len(want)), want)
}

// sendRetrying sends as the forwarder does, retrying an error a few
// times, and fails t when the batch is never reported sent.
func sendRetrying(t *testing.T, snd Sender, batch [][]byte) {
	t.Helper()
	var err error
	for range 5 {
		if err = snd.Send(context.Background(), batch); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not sent after 5 attempts: %v", err)
}

// contains reports whether recs holds batch as a contiguous run.
func contains(recs []string, batch []string) bool {
	for i := range recs {
		if i+len(batch) > len(recs) {
			return false
		}
		if recs[i] != batch[0] {
			continue
		}
		ok := true
		for j := range batch {
			if recs[i+j] != batch[j] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// testReconnect restarts the receiver between batches: every batch
// reported sent arrives whole.
func (s *suite) testReconnect(t *testing.T) {
	r, snd := s.start(t)
	var sent [][]string
	for round := range 3 {
		b := s.batch("round"+strconv.Itoa(round), 4)
		sendRetrying(t, snd, b)
		sent = append(sent, strs(b))
		n := 0
		for _, b := range sent {
			n += len(b)
		}
		got := r.wait(t, n)
		for i, b := range sent {
			if !contains(got, b) {
				t.Fatalf("batch %d reported sent but not received whole: got %q", i, got)
			}
		}
		r.restart()
		time.Sleep(20 * time.Millisecond)
	}
}

// testDown: a receiver that is not there gives an error that names the
// transport and the configured address once each, the cause once, and
// never a resolved address; an HTTP receiver's error body is not echoed.
func (s *suite) testDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens there now
	addr := "localhost:" + port
	snd := s.sender(t, addr)
	err = snd.Send(context.Background(), s.batch("down", 2))
	if err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	msg := err.Error()
	if strings.Count(msg, s.cfg.Op) != 1 || strings.Count(msg, addr) != 1 || strings.Count(msg, "refused") != 1 {
		t.Errorf("%q does not name %q, %q and the refusal once each", msg, s.cfg.Op, addr)
	}
	for _, resolved := range []string{"127.0.0.1", "[::1]", "::1:"} {
		if strings.Contains(msg, resolved) {
			t.Errorf("%q shows the resolved address", msg)
		}
	}
	if s.cfg.Protocol != HEC && s.cfg.Protocol != NDJSON {
		return
	}
	r, snd := s.start(t)
	r.setFail(true)
	err = snd.Send(context.Background(), s.batch("failing", 2))
	if err == nil {
		t.Fatal("a 500 answer was taken for success")
	}
	if strings.Contains(err.Error(), "secret-body-marker") || strings.Contains(err.Error(), "10.1.2.3") {
		t.Errorf("%q repeats the receiver's body", err)
	}
	if strings.Count(err.Error(), s.cfg.Op) != 1 {
		t.Errorf("%q does not name %q once", err, s.cfg.Op)
	}
}

// promptly bounds how long a Send may take to notice cancellation on a
// loaded machine.
const promptly = 5 * time.Second

// testCancelStalled: the receiver accepts but never reads or answers;
// cancelling the context ends the Send at once.
func (s *suite) testCancelStalled(t *testing.T) {
	r, snd := s.start(t)
	r.setStall(true)
	big := make([][]byte, 0, 512)
	for i := range 512 { // 32 MiB: more than any socket buffer holds
		big = append(big, s.large("stall"+strconv.Itoa(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Send(ctx, big) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Send to a stalled receiver returned before cancellation: %v", err)
	default:
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a cancelled Send reported success")
		}
	case <-time.After(promptly):
		t.Fatalf("Send still running %s after cancellation", promptly)
	}
	t.Logf("returned %s after cancellation", time.Since(start))
}

// testCancelled: a Send with a context already cancelled fails at once,
// on a fresh sender and on one already connected, and the error says so.
func (s *suite) testCancelled(t *testing.T) {
	_, snd := s.start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := snd.Send(ctx, s.batch("cancelled", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("fresh sender, cancelled context: %v, want context.Canceled", err)
	}
	if err := snd.Send(context.Background(), s.batch("live", 1)); err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, s.batch("cancelled", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("connected sender, cancelled context: %v, want context.Canceled", err)
	}
}

func (s *suite) testClose(t *testing.T) {
	r, snd := s.start(t)
	b := s.batch("close", 2)
	if err := snd.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 2)
	if err := snd.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := snd.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if s.cfg.ClosedErr != nil {
		if err := snd.Send(context.Background(), b); !errors.Is(err, s.cfg.ClosedErr) {
			t.Errorf("Send after Close: %v, want %v", err, s.cfg.ClosedErr)
		}
	}
}

// testConcurrent: Sends from several goroutines all arrive, each batch
// whole and in its order.
func (s *suite) testConcurrent(t *testing.T) {
	r, snd := s.start(t)
	const workers, rounds = 8, 5
	var wg sync.WaitGroup
	batches := make([][][]string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				b := s.batch(fmt.Sprintf("w%d-r%d", w, i), 4)
				if err := snd.Send(context.Background(), b); err != nil {
					t.Error(err)
					return
				}
				batches[w] = append(batches[w], strs(b))
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := r.wait(t, workers*rounds*4)
	if len(got) != workers*rounds*4 {
		t.Fatalf("received %d records, want %d", len(got), workers*rounds*4)
	}
	for w, bs := range batches {
		last := -1
		for i, b := range bs {
			if !contains(got, b) {
				t.Fatalf("worker %d batch %d not received whole and in order", w, i)
			}
			at := indexOf(got, b[0])
			if at < last {
				t.Errorf("worker %d batch %d arrived before its predecessor", w, i)
			}
			last = at
		}
	}
}

func indexOf(recs []string, rec string) int {
	for i, r := range recs {
		if r == rec {
			return i
		}
	}
	return -1
}
