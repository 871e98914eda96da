package netguard_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takumo/audit/platform/netguard"
)

func TestAllowedAddr(t *testing.T) {
	g := netguard.New(netguard.Config{})
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"8.8.8.8", true}, {"2606:4700::1111", true}, {"93.184.216.34", true},
		{"127.0.0.1", false}, {"127.8.9.10", false}, {"::1", false}, {"::ffff:127.0.0.1", false},
		{"10.1.2.3", false}, {"172.20.0.1", false}, {"192.168.1.1", false}, {"fd00:ec2::254", false},
		{"169.254.169.254", false}, {"fe80::1", false}, {"100.64.0.1", false}, {"100.100.100.200", false},
		{"224.0.0.1", false}, {"ff02::1", false}, {"0.0.0.0", false}, {"::", false}, {"255.255.255.255", false},
		{"64:ff9b::7f00:1", false},
	} {
		if got := g.AllowedAddr(netip.MustParseAddr(c.addr)); got != c.ok {
			t.Errorf("AllowedAddr(%s) = %v, want %v", c.addr, got, c.ok)
		}
	}
	allow, err := netguard.ParseAllow("127.0.0.1, 10.20.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	g = netguard.New(netguard.Config{Allow: allow})
	if !g.AllowedAddr(netip.MustParseAddr("127.0.0.1")) || !g.AllowedAddr(netip.MustParseAddr("10.20.3.4")) || g.AllowedAddr(netip.MustParseAddr("10.21.0.1")) {
		t.Fatal("allow-list not applied")
	}
}

func TestCheckURL(t *testing.T) {
	strict := netguard.New(netguard.Config{})
	dev := netguard.New(netguard.Config{AllowHTTP: true})
	for _, c := range []struct {
		g   *netguard.Guard
		url string
		ok  bool
	}{
		{strict, "https://hooks.example.com/audit", true},
		{strict, "http://hooks.example.com/audit", false},
		{dev, "http://hooks.example.com/audit", true},
		{strict, "ftp://hooks.example.com/", false},
		{strict, "https://user:pw@hooks.example.com/", false},
		{strict, "https:///nohost", false},
		{strict, "https://127.0.0.1/x", false},
		{strict, "https://[::1]:8443/x", false},
		{strict, "https://169.254.169.254/latest/meta-data", false},
	} {
		if err := c.g.CheckURL(c.url); (err == nil) != c.ok {
			t.Errorf("CheckURL(%s) = %v, want ok=%v", c.url, err, c.ok)
		}
	}
}

func TestLoopbackRefusedWithoutAllowList(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	// By name, so URL validation cannot see the address: only the dial can.
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	c := netguard.New(netguard.Config{AllowHTTP: true}).NewClient(netguard.ClientConfig{Timeout: 2 * time.Second})
	_, err := c.Post(url, "application/json", nil)
	if !errors.Is(err, netguard.ErrForbiddenAddress) {
		t.Fatalf("loopback not refused: %v", err)
	}

	allow, _ := netguard.ParseAllow("127.0.0.1/32,::1/128")
	c = netguard.New(netguard.Config{AllowHTTP: true, Allow: allow}).NewClient(netguard.ClientConfig{Timeout: 2 * time.Second})
	resp, err := c.Post(url, "application/json", nil)
	if err != nil {
		t.Fatalf("allow-listed loopback refused: %v", err)
	}
	resp.Body.Close()
}

// TestDNSRebindingRefusedAtDial runs a DNS server whose first answer for a
// name is a public address and every later answer 127.0.0.1: a check made
// when the endpoint is registered passes, the connection is still refused.
func TestDNSRebindingRefusedAtDial(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer target.Close()
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())

	var queries atomic.Int32
	resolver := rebindingDNS(t, func() netip.Addr {
		if queries.Add(1) == 1 {
			return netip.MustParseAddr("93.184.216.34")
		}
		return netip.MustParseAddr("127.0.0.1")
	})
	g := netguard.New(netguard.Config{AllowHTTP: true})
	url := "http://rebind.example.com:" + port + "/hook"
	if err := g.CheckURL(url); err != nil {
		t.Fatal(err)
	}
	first, err := resolver.LookupNetIP(context.Background(), "ip4", "rebind.example.com")
	if err != nil || len(first) != 1 || !g.AllowedAddr(first[0]) {
		t.Fatalf("registration-time lookup: %v %v", first, err)
	}
	c := g.NewClient(netguard.ClientConfig{Timeout: 2 * time.Second, Resolver: resolver})
	_, err = c.Post(url, "application/json", nil)
	if !errors.Is(err, netguard.ErrForbiddenAddress) {
		t.Fatalf("rebound name not refused at dial: %v", err)
	}
	// The refusal names the host as configured, never the address it
	// resolved to.
	if msg := err.Error(); strings.Contains(msg, "127.0.0.1") || !strings.Contains(msg, "rebind.example.com") {
		t.Fatalf("refusal %q", msg)
	}
}

// TestPolicies: each kind's guard refuses a loopback listener by name
// until its own allow-list names the range, and says which variable does.
func TestPolicies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	addr := net.JoinHostPort("localhost", port)
	loop, _ := netguard.ParseAllow("127.0.0.0/8,::1")
	for _, c := range []struct {
		policy func(bool, []netip.Prefix) netguard.Config
		env    string
	}{{netguard.Webhooks, "AUDIT_WEBHOOK_ALLOW_CIDRS"}, {netguard.SIEM, "AUDIT_SIEM_ALLOW_CIDRS"}} {
		_, err := netguard.New(c.policy(false, nil)).DialContext(context.Background(), "tcp", addr)
		var de *netguard.DialError
		if !errors.Is(err, netguard.ErrForbiddenAddress) || !errors.As(err, &de) {
			t.Fatalf("%s: loopback not refused: %v", c.env, err)
		}
		if msg := err.Error(); !strings.Contains(msg, c.env) || strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "::1") {
			t.Fatalf("%s: refusal %q", c.env, msg)
		}
		conn, err := netguard.New(c.policy(false, loop)).DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatalf("%s: allow-listed loopback refused: %v", c.env, err)
		}
		conn.Close()
		if err := netguard.New(c.policy(false, nil)).CheckURL("http://siem.example.com/"); err == nil {
			t.Fatalf("%s: plain http accepted", c.env)
		}
	}
}

func TestReasonHidesAddresses(t *testing.T) {
	// A closed port on an allow-listed address: the dial error of the
	// standard library names the address; the guard's does not.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	loop, _ := netguard.ParseAllow("127.0.0.0/8,::1")
	_, err := netguard.New(netguard.SIEM(false, loop)).DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", port))
	if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("dial error %v", err)
	}
	_, raw := net.Dial("tcp", addr)
	if raw == nil || !strings.Contains(raw.Error(), "127.0.0.1") {
		t.Fatalf("expected the raw error to name the address: %v", raw)
	}
	safe := netguard.Sanitize(raw)
	if strings.Contains(safe.Error(), "127.0.0.1") || safe.Error() != "connection refused" || !errors.Is(safe, raw) {
		t.Fatalf("Sanitize: %q", safe)
	}
	if netguard.Sanitize(nil) != nil {
		t.Fatal("Sanitize(nil)")
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int32
	final := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer final.Close()
	redir := httptest.NewServer(http.RedirectHandler(final.URL, http.StatusTemporaryRedirect))
	defer redir.Close()
	allow, _ := netguard.ParseAllow("127.0.0.1")
	c := netguard.New(netguard.Config{AllowHTTP: true, Allow: allow}).NewClient(netguard.ClientConfig{})
	resp, err := c.Post(redir.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || hits.Load() != 0 {
		t.Fatalf("status %d, redirect target hit %d times", resp.StatusCode, hits.Load())
	}
}

// rebindingDNS serves A queries over UDP with answer() and returns a
// resolver that uses it.
func rebindingDNS(t *testing.T, answer func() netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if len(q) < 12 {
				continue
			}
			end := 12
			for end < len(q) && q[end] != 0 {
				end += int(q[end]) + 1
			}
			end += 5 // zero label, qtype, qclass
			if end > len(q) {
				continue
			}
			qtype := binary.BigEndian.Uint16(q[end-4:])
			resp := append([]byte{}, q[:end]...)
			resp[2], resp[3] = 0x81, 0x80            // response, recursion available, no error
			binary.BigEndian.PutUint16(resp[6:], 0)  // answers
			binary.BigEndian.PutUint16(resp[8:], 0)  // authority
			binary.BigEndian.PutUint16(resp[10:], 0) // additional
			if qtype == 1 {                          // A
				binary.BigEndian.PutUint16(resp[6:], 1)
				ip := answer().As4()
				resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4)
				resp = append(resp, ip[:]...)
			}
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}
