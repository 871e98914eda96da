package forwarder_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

const benchEvents = 200_000

// publish stores n events of org in the stream before the clock starts.
func publish(b *testing.B, e *env, org string, n int) {
	admin := producer.User("usr_42", "Ada Lovelace", "ada@acme.example")
	for i := range n {
		_, msg, err := e.prod.Prepare(producer.MemberRoleChanged(org, admin, producer.Member(fmt.Sprintf("usr_%d", i), "Bob Example", "bob@acme.example"), "member", "admin"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.js.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
		// Wait for the acks now and then, so a slow machine never stalls
		// the asynchronous publisher.
		if i%1000 == 999 || i == n-1 {
			select {
			case <-e.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("publish did not complete")
			}
		}
	}
}

func benchmark(b *testing.B, d destinations.Destination, sec destinations.Secrets, received func() int64) {
	e := newEnv(b)
	d.OrgID, d.Name = "org_bench", "bench"
	if _, err := e.store.Create(context.Background(), d, sec); err != nil {
		b.Fatal(err)
	}
	publish(b, e, "org_bench", benchEvents)
	b.ResetTimer()
	start := time.Now()
	e.run(b, forwarder.Config{BatchSize: 2000, BatchWait: 50 * time.Millisecond})
	for received() < benchEvents {
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(benchEvents)/elapsed.Seconds(), "events/s")
}

// BenchmarkSyslogTCP forwards 200,000 events over syslog TCP (RFC 5424,
// octet counting) to a local receiver that parses every frame.
func BenchmarkSyslogTCP(b *testing.B) {
	r := newTCPReceiver(b)
	benchmark(b, destinations.Destination{Format: "syslog", Transport: "tcp", Address: r.addr}, destinations.Secrets{},
		func() int64 { r.mu.Lock(); defer r.mu.Unlock(); return int64(len(r.recs)) })
}

// BenchmarkHEC forwards 200,000 events to a local HEC endpoint (plain
// HTTP loopback; TLS is covered by the transport tests) that counts the
// envelopes it receives.
func BenchmarkHEC(b *testing.B) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		var c int64
		for sc.Scan() {
			c++
		}
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(c)
		_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
	}))
	defer srv.Close()
	benchmark(b, destinations.Destination{Format: "hec", Transport: "https", Address: srv.URL}, destinations.Secrets{Token: destination.NewSecret("t")}, n.Load)
}
