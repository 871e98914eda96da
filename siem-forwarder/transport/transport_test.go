package transport_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takumo/audit/siem-forwarder/transport"
	"github.com/takumo/audit/siem-forwarder/transport/httpsend"
	"github.com/takumo/audit/siem-forwarder/transport/syslognet"
)

var batch = [][]byte{[]byte("<110>1 - - - - - - first"), []byte("<110>1 - - - - - - second with ünïcode"), []byte("third")}

// listen accepts stream connections and returns what they carried.
func listen(t *testing.T, ln net.Listener, lf bool) func(n int) []string {
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var rec string
					if lf {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						rec = strings.TrimSuffix(line, "\n")
					} else {
						n, err := br.ReadString(' ')
						if err != nil {
							return
						}
						size, _ := strconv.Atoi(strings.TrimSpace(n))
						buf := make([]byte, size)
						if _, err := io.ReadFull(br, buf); err != nil {
							return
						}
						rec = string(buf)
					}
					mu.Lock()
					got = append(got, rec)
					mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return func(n int) []string {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			if len(got) >= n {
				out := append([]string(nil), got...)
				mu.Unlock()
				return out
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("received %d records, want %d", len(got), n)
		return nil
	}
}

func want(t *testing.T, got []string, n int) {
	t.Helper()
	for i := range n {
		if got[i] != string(batch[i%len(batch)]) {
			t.Fatalf("record %d = %q, want %q", i, got[i], batch[i%len(batch)])
		}
	}
}

// A record over the UDP limit fails the batch rather than being cut.
func TestSyslogUDPOversized(t *testing.T) {
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pc.Close()
	s, err := syslognet.New(syslognet.Config{Network: "udp", Address: pc.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(context.Background(), [][]byte{make([]byte, syslognet.MaxDatagram+1)}); err == nil {
		t.Error("oversized datagram accepted")
	}
}

// TestSyslogTLS: RFC 5425 over TLS with verification against a custom CA
// and a client certificate (mutual TLS); an unknown CA is refused.
func TestSyslogTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil) // only for its certificate
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	cert := srv.TLS.Certificates[0]
	srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	keyDER, _ := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))

	var gotClientCert bool
	ln, _ := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { gotClientCert = len(raw) > 0; return nil }})
	recv := listen(t, ln, false)
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	cfg, err := transport.TLS{CAPEM: caPEM, CertPEM: caPEM, KeyPEM: keyPEM, ServerName: "example.com"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := syslognet.New(syslognet.Config{Network: "tls", Address: "127.0.0.1:" + port, TLS: cfg})
	defer s.Close()
	for range 2 {
		if err := s.Send(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	want(t, recv(6), 6)
	if !gotClientCert {
		t.Error("client certificate not presented")
	}

	strict, _ := transport.TLS{}.Config() // system roots: the test CA is unknown
	s2, _ := syslognet.New(syslognet.Config{Network: "tls", Address: "127.0.0.1:" + port, TLS: strict})
	defer s2.Close()
	if err := s2.Send(context.Background(), batch); err == nil {
		t.Error("unverified server accepted")
	}
	if _, err := syslognet.New(syslognet.Config{Network: "tls", Address: "127.0.0.1:1"}); err == nil {
		t.Error("tls without a configuration accepted")
	}
}

// TestHEC checks the request a Splunk HEC receives and the handling of
// its answers.
func TestHEC(t *testing.T) {
	var mu sync.Mutex
	var status int
	var answer string
	var bodies []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != httpsend.HECPath || r.Header.Get("Authorization") != "Splunk 11111111-2222-3333-4444-555555555555" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"text":"Invalid token","code":4}`)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, string(b))
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "3")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	newSender := func(token string) *httpsend.Sender {
		s, err := httpsend.New(httpsend.Config{URL: srv.URL, HEC: true, Token: token, TLS: &tls.Config{RootCAs: pool}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newSender("11111111-2222-3333-4444-555555555555")
	set := func(st int, a string) { mu.Lock(); status, answer = st, a; mu.Unlock() }

	set(200, `{"text":"Success","code":0}`)
	if err := s.Send(context.Background(), [][]byte{[]byte(`{"event":1}`), []byte(`{"event":2}`)}); err != nil {
		t.Fatal(err)
	}
	if bodies[0] != "{\"event\":1}\n{\"event\":2}\n" {
		t.Errorf("body = %q; want envelopes concatenated", bodies[0])
	}
	set(200, `{"text":"Success","code":0,"ackId":7}`) // indexer ack enabled: still accepted
	if err := s.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	set(400, `{"text":"Invalid data format","code":6,"invalid-event-number":0}`)
	var se *httpsend.StatusError
	if err := s.Send(context.Background(), batch); !errors.As(err, &se) || se.Status != 400 || se.HECCode != 6 {
		t.Errorf("400 gave %v", err)
	}
	set(503, `{"text":"Server is busy","code":9}`)
	var ra *transport.RetryAfterError
	if err := s.Send(context.Background(), batch); !errors.As(err, &ra) || ra.Wait != 3*time.Second {
		t.Errorf("503 gave %v", err)
	}
	set(413, `{"text":"Content too large"}`)
	if err := s.Send(context.Background(), batch); !errors.Is(err, transport.ErrTooLarge) {
		t.Errorf("413 gave %v", err)
	}
	if err := newSender("wrong").Send(context.Background(), batch); !errors.As(err, &se) || se.Status != 401 || se.HECCode != 4 {
		t.Errorf("bad token gave %v", err)
	}
	// Verification is on by default: the test server's CA is not trusted.
	s2, _ := httpsend.New(httpsend.Config{URL: srv.URL, HEC: true, Token: "x"})
	if err := s2.Send(context.Background(), batch); err == nil {
		t.Error("unverified HEC server accepted")
	}
	if _, err := httpsend.New(httpsend.Config{URL: "http://example.com", HEC: true, Token: "x"}); err == nil {
		t.Error("plain http accepted")
	}
}

// A refused connection names the operation, the address and the cause
// once each: no layer repeats what the error it wraps already says.
func TestErrorsSayEachThingOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	for _, network := range []string{"tcp", "tls"} {
		cfg := syslognet.Config{Network: network, Address: addr}
		if network == "tls" {
			cfg.TLS = &tls.Config{}
		}
		s, err := syslognet.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(context.Background(), batch)
		s.Close()
		if err == nil {
			t.Fatalf("%s: send to a closed port succeeded", network)
		}
		msg := err.Error()
		if strings.Count(msg, "dial tcp") > 1 || strings.Count(msg, addr) != 1 || strings.Count(msg, "syslognet") != 1 || strings.Count(msg, "connection refused") != 1 {
			t.Errorf("%s: %q repeats or lacks its context", network, msg)
		}
		var op *net.OpError
		if !errors.As(err, &op) {
			t.Errorf("%s: %q does not unwrap to the *net.OpError", network, msg)
		}
	}

	h, err := httpsend.New(httpsend.Config{URL: "http://" + addr + "/ingest?token=s3cret", AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Send(context.Background(), batch)
	h.Close()
	if err == nil {
		t.Fatal("https send to a closed port succeeded")
	}
	msg := err.Error()
	if strings.Count(strings.ToLower(msg), "post") != 1 || strings.Count(msg, addr) != 1 || strings.Contains(msg, "s3cret") ||
		strings.Count(msg, "httpsend") != 1 || strings.Count(msg, "connection refused") != 1 {
		// The address appears once, in the redacted URL; the cause is told
		// without the dialled address.
		t.Errorf("http: %q repeats its context or shows the query", msg)
	}
}
