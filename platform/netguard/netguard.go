package netguard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenAddress is wrapped by dial errors for a refused address.
var ErrForbiddenAddress = errors.New("netguard: destination address is not allowed")

// ErrForbiddenURL is wrapped by CheckURL's errors.
var ErrForbiddenURL = errors.New("netguard: URL is not allowed")

// denied are the ranges no webhook may reach unless allow-listed.
var denied = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT (also Alibaba's metadata 100.100.100.200)
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata 169.254.169.254
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"64:ff9b::/96",    // NAT64, reaches IPv4 space
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard
		"2001::/23",       // IETF protocol assignments
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4, embeds IPv4
		"fc00::/7",        // unique local (AWS metadata fd00:ec2::254)
		"fe80::/10",       // link-local
		"ff00::/8",        // multicast
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// Config says what a Guard lets through.
type Config struct {
	// Kind names what the guard protects in refusals ("webhook endpoint",
	// "SIEM destination"); AllowVar is the variable that lifts a refusal
	// (AUDIT_WEBHOOK_ALLOW_CIDRS). Both only shape messages.
	Kind, AllowVar string
	// AllowHTTP permits plain http:// URLs. For development only.
	AllowHTTP bool
	// Allow lists ranges that are reachable even though they are denied by
	// default, e.g. 10.20.0.0/16 for receivers inside a private network.
	Allow []netip.Prefix
}

// Webhooks is the policy of webhook endpoints: https only unless
// allowHTTP, internal ranges refused unless in allow
// (AUDIT_WEBHOOK_ALLOW_CIDRS).
func Webhooks(allowHTTP bool, allow []netip.Prefix) Config {
	return Config{Kind: "webhook endpoint", AllowVar: "AUDIT_WEBHOOK_ALLOW_CIDRS", AllowHTTP: allowHTTP, Allow: allow}
}

// SIEM is the policy of SIEM destinations: internal ranges refused unless
// in allow (AUDIT_SIEM_ALLOW_CIDRS). It is the same default as webhooks'
// because a destination is configured by an organization's admin, and on
// a host serving many organizations no admin may point the forwarder at
// the operator's network. An operator whose SIEM sits on an internal
// network allow-lists its range. allowHTTP permits http:// for the HTTPS
// formats (tests and local sidecars only).
func SIEM(allowHTTP bool, allow []netip.Prefix) Config {
	return Config{Kind: "SIEM destination", AllowVar: "AUDIT_SIEM_ALLOW_CIDRS", AllowHTTP: allowHTTP, Allow: allow}
}

// ParseAllow parses a comma-separated list of CIDRs or single addresses.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("netguard: allow-list entry %q: %w", f, err)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("netguard: allow-list entry %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Guard checks URLs and addresses. Create it with New.
type Guard struct {
	cfg Config
}

// New returns a Guard for cfg.
func New(cfg Config) *Guard {
	if cfg.Kind == "" {
		cfg.Kind = "destination"
	}
	return &Guard{cfg: cfg}
}

// AllowHTTP reports whether the policy permits plain http:// URLs.
func (g *Guard) AllowHTTP() bool { return g.cfg.AllowHTTP }

// AllowedAddr reports whether a connection to a may be made.
func (g *Guard) AllowedAddr(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range g.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsMulticast() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range denied {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// CheckURL validates an endpoint URL's form: https (or http when allowed),
// a host, no user information, no fragment. A literal IP host is checked
// against the address rules at once; names are checked when connecting.
func (g *Guard) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenURL, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !g.cfg.AllowHTTP {
			return fmt.Errorf("%w: only https URLs are accepted", ErrForbiddenURL)
		}
	default:
		return fmt.Errorf("%w: scheme must be https", ErrForbiddenURL)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%w: no host", ErrForbiddenURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL are not accepted", ErrForbiddenURL)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%w: fragments are not accepted", ErrForbiddenURL)
	}
	if len(raw) > 2048 {
		return fmt.Errorf("%w: longer than 2048 bytes", ErrForbiddenURL)
	}
	if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !g.AllowedAddr(a) {
		return fmt.Errorf("%w: %s is an internal address%s", ErrForbiddenAddress, a, g.hint())
	}
	return nil
}

// hint tells how to lift a refusal.
func (g *Guard) hint() string {
	if g.cfg.AllowVar == "" {
		return ""
	}
	return " (an operator can allow its range in " + g.cfg.AllowVar + ")"
}

// control runs on every socket before it connects, with the resolved
// address. Its error never names that address: the caller's DialError
// names the address as given.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !g.AllowedAddr(ap.Addr()) {
		return ErrForbiddenAddress
	}
	return nil
}

// Dialer returns a dialer that refuses forbidden addresses at connect time.
// resolver may be nil for the system resolver. Its errors carry the
// resolved address; prefer DialContext or DialFunc, whose errors do not.
func (g *Guard) Dialer(timeout time.Duration, resolver *net.Resolver) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.control, Resolver: resolver}
}

// DialFunc returns a guarded dial function with the given connect timeout
// and resolver (nil: the system resolver). Its errors are *DialError.
func (g *Guard) DialFunc(timeout time.Duration, resolver *net.Resolver) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := g.Dialer(timeout, resolver)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			de := &DialError{Addr: addr, Reason: Reason(err), Err: err}
			if errors.Is(err, ErrForbiddenAddress) {
				de.Reason = ErrForbiddenAddress.Error() + ": the host is in an internal range" + g.hint()
			}
			return nil, de
		}
		return c, nil
	}
}

// ClientConfig tunes the client NewClient returns.
type ClientConfig struct {
	// Timeout bounds a whole request, body included (default 15 s).
	Timeout time.Duration
	// MaxConnsPerHost bounds connections to one host (default 8).
	MaxConnsPerHost int
	// Resolver resolves names; nil means the system resolver.
	Resolver *net.Resolver
	// TLS configures verification and client certificates; nil verifies
	// against the system roots.
	TLS *tls.Config
}

// NewClient returns an HTTP client for deliveries: it never follows
// redirects (a 3xx is returned as the response), ignores proxy environment
// variables (a proxy would connect on the client's behalf, out of the
// guard's sight), and dials through the guard. Safe for concurrent use.
func (g *Guard) NewClient(cc ClientConfig) *http.Client {
	if cc.Timeout <= 0 {
		cc.Timeout = 15 * time.Second
	}
	if cc.MaxConnsPerHost <= 0 {
		cc.MaxConnsPerHost = 8
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialFunc(min(cc.Timeout, 10*time.Second), cc.Resolver),
		TLSClientConfig:       cc.TLS,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   cc.MaxConnsPerHost,
		MaxConnsPerHost:       cc.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cc.Timeout,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   cc.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// DialContext is the guarded dial function (10 s connect timeout, system
// resolver), for callers building their own transport.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return g.DialFunc(10*time.Second, nil)(ctx, network, addr)
}
