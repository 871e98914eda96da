package forwarder_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// byName replaces 127.0.0.1 by localhost, so only the connection sees the
// address.
func byName(addr string) string { return strings.Replace(addr, "127.0.0.1", "localhost", 1) }

// TestDestinationsDialThroughTheGuard: every transport connects through
// the SIEM policy: a loopback receiver is refused until
// AUDIT_SIEM_ALLOW_CIDRS names its range, and the refusal names neither
// the resolved address nor anything else of the host's network.
func TestDestinationsDialThroughTheGuard(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	hec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"text":"Success","code":0}`)) }))
	defer hec.Close()

	ctx := context.Background()
	for _, c := range []struct {
		name string
		d    destinations.Destination
		sec  destinations.Secrets
	}{
		{"syslog tcp", destinations.Destination{Format: "syslog", Transport: "tcp", Address: byName(ln.Addr().String())}, destinations.Secrets{}},
		{"cef tls", destinations.Destination{Format: "cef", Transport: "tls", Address: byName(ln.Addr().String())}, destinations.Secrets{}},
		{"leef udp", destinations.Destination{Format: "leef", Transport: "udp", Address: byName(pc.LocalAddr().String())}, destinations.Secrets{}},
		{"hec https", destinations.Destination{Format: "hec", Transport: "https", Address: byName(hec.URL)}, destinations.Secrets{Token: destination.NewSecret("t")}},
	} {
		c.d.OrgID, c.d.ID, c.d.Name = "org_g", "d1", c.name
		before := accepted.Load()
		err := forwarder.Test(ctx, c.d, c.sec, forwarder.BuildOptions{AllowHTTP: true})
		if !errors.Is(err, netguard.ErrForbiddenAddress) {
			t.Fatalf("%s: loopback not refused: %v", c.name, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "AUDIT_SIEM_ALLOW_CIDRS") || strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "::1") {
			t.Fatalf("%s: refusal %q", c.name, msg)
		}
		if accepted.Load() != before {
			t.Fatalf("%s: the receiver was reached", c.name)
		}
		err = forwarder.Test(ctx, c.d, c.sec, forwarder.BuildOptions{AllowHTTP: true, AllowCIDRs: loopback})
		if errors.Is(err, netguard.ErrForbiddenAddress) {
			t.Fatalf("%s: allow-listed loopback refused: %v", c.name, err)
		}
		if c.d.Transport == "tcp" || c.d.Transport == "https" || c.d.Transport == "udp" {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		if c.d.Transport == "tcp" || c.d.Transport == "tls" {
			// The allow-listed connection reached ln; its accept is
			// counted by the accepting goroutine, which may not have run
			// yet: wait for it, so that the next case's count starts
			// after it.
			deadline := time.Now().Add(10 * time.Second)
			for accepted.Load() == before && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if accepted.Load() == before {
				t.Fatalf("%s: the allow-listed receiver was not reached", c.name)
			}
		}
	}
}

// TestHTTPSAnswersCarryNoRemoteText: a redirect is not followed, and an
// error answer is reported by its status (and HEC code meaning), never by
// what the receiver wrote in its body.
func TestHTTPSAnswersCarryNoRemoteText(t *testing.T) {
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { plainHits.Add(1) }))
	defer plain.Close()
	const page = "<html>Internal error at db-7.corp.internal (10.9.8.7)</html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, plain.URL+"/collect", http.StatusTemporaryRedirect)
		case "/page":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(page))
		default: // HEC
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"text":"Invalid token; see db-7.corp.internal","code":4}`))
		}
	}))
	defer srv.Close()
	o := forwarder.BuildOptions{AllowHTTP: true, AllowCIDRs: loopback}
	ctx := context.Background()
	for _, c := range []struct {
		d    destinations.Destination
		sec  destinations.Secrets
		want string
	}{
		{destinations.Destination{Format: "ndjson", Transport: "https", Address: srv.URL + "/redirect"}, destinations.Secrets{}, "HTTP 307: redirects are not followed"},
		{destinations.Destination{Format: "ocsf", Transport: "https", Address: srv.URL + "/page"}, destinations.Secrets{}, "HTTP 500"},
		{destinations.Destination{Format: "hec", Transport: "https", Address: srv.URL}, destinations.Secrets{Token: destination.NewSecret("t")}, "HTTP 403, HEC code 4: invalid token"},
	} {
		c.d.OrgID, c.d.ID, c.d.Name = "org_g", "d1", "x"
		err := forwarder.Test(ctx, c.d, c.sec, o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: error %v, want %q", c.d.Address, err, c.want)
		}
		for _, leak := range []string{"db-7", "10.9.8.7", "Internal error", "html"} {
			if strings.Contains(err.Error(), leak) {
				t.Fatalf("%s: error %q repeats the receiver's body", c.d.Address, err)
			}
		}
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}
