// Package httpsend posts batches of records over HTTPS: to a Splunk HTTP
// Event Collector, or to a generic endpoint taking NDJSON (or OCSF JSON
// lines) with a configurable authorization header.
//
// Splunk HEC: POST <base>/services/collector/event with
// "Authorization: Splunk <token>" and the envelopes concatenated, one per
// line. A 200 answer with {"code":0} is success; without indexer
// acknowledgement enabled on the token that only means the events were
// valid, which is all HEC offers on that path. Errors:
//   - 413 returns transport.ErrTooLarge (the forwarder splits the batch);
//   - 429 and 503 (HEC busy, code 9) return *transport.RetryAfterError
//     carrying Retry-After when present;
//   - any other non-2xx, or a 200 with a non-zero code, returns *StatusError
//     with the HEC code and text (401/403: token disabled or invalid, code
//     2-4; 400: invalid data, code 5-6 or 12-13).
//
// Generic: POST <url> with Content-Type application/x-ndjson (configurable),
// records one per line, and the configured header; any 2xx is success.
//
// Redirects are never followed: a 3xx answer is a *StatusError. No proxy
// from the environment is used. Errors never carry what the receiver sent
// (an internal error page, say) nor an address a name resolved to: a
// refusal carries the HTTP status and, for HEC, the documented meaning of
// its code; a connection failure a short reason (netguard.Reason).
package httpsend

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/siem-forwarder/transport"
)

// HECPath is the HEC endpoint for JSON envelopes.
const HECPath = "/services/collector/event"

// Config describes the endpoint.
type Config struct {
	// URL is the endpoint. For HEC a URL without a path gets HECPath.
	URL string
	// HEC selects the Splunk protocol; Token is the HEC token.
	HEC   bool
	Token string
	// AuthHeader and AuthValue, for a generic endpoint, are sent on every
	// request (e.g. "Authorization", "Bearer ..."). Both empty: none.
	AuthHeader, AuthValue string
	// ContentType of a generic request; default application/x-ndjson.
	ContentType string
	// TLS configures verification and client certificates; nil verifies
	// against the system roots.
	TLS *tls.Config
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
	// AllowHTTP permits plain http:// URLs (local tests and sidecars).
	AllowHTTP bool
	// Dial opens connections; the forwarder passes its address guard's
	// (netguard.Guard.DialFunc). nil dials directly.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// StatusError is a refusal by the receiver. Text is the documented
// meaning of a HEC code, never the body of the answer.
type StatusError struct {
	Status  int
	HECCode int // -1 when the answer had no HEC code
	Text    string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("httpsend: HTTP %d", e.Status)
	if e.HECCode >= 0 {
		msg += fmt.Sprintf(", HEC code %d", e.HECCode)
	}
	if e.Text != "" {
		msg += ": " + e.Text
	}
	return msg
}

// hecCodes are the meanings of Splunk HEC status codes, as documented.
var hecCodes = map[int]string{
	1: "token disabled", 2: "token is required", 3: "invalid authorization", 4: "invalid token",
	5: "no data", 6: "invalid data format", 7: "incorrect index", 8: "internal server error",
	9: "server is busy", 10: "data channel is missing", 11: "invalid data channel",
	12: "event field is required", 13: "event field cannot be blank", 14: "ACK is disabled",
	15: "error in handling indexed fields", 16: "query string authorization is not enabled",
}

// Sender posts batches. It is safe for concurrent use; Close releases idle
// connections.
type Sender struct {
	cfg    Config
	url    string
	client *http.Client
	pool   sync.Pool
}

// New validates cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("httpsend: url %q is not an absolute URL", cfg.URL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && cfg.AllowHTTP:
	default:
		return nil, fmt.Errorf("httpsend: url %q: https is required", cfg.URL)
	}
	if cfg.HEC {
		if cfg.Token == "" {
			return nil, errors.New("httpsend: a HEC token is required")
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = HECPath
		}
	}
	if (cfg.AuthHeader == "") != (cfg.AuthValue == "") {
		return nil, errors.New("httpsend: set both the auth header and its value, or neither")
	}
	if cfg.ContentType == "" {
		cfg.ContentType = "application/x-ndjson"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would connect out of the guard's sight
		DialContext:           dial,
		TLSClientConfig:       cfg.TLS,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Sender{cfg: cfg, url: u.String(), client: client}, nil
}

// Send posts the records as one body, one record per line.
func (s *Sender) Send(ctx context.Context, records [][]byte) error {
	buf, _ := s.pool.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= 8<<20 {
			buf.Reset()
			s.pool.Put(buf)
		}
	}()
	for _, r := range records {
		buf.Write(r)
		buf.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(buf.Bytes()))
	if err != nil {
		return fmt.Errorf("httpsend: %w", err)
	}
	if s.cfg.HEC {
		req.Header.Set("Authorization", "Splunk "+s.cfg.Token)
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", s.cfg.ContentType)
		if s.cfg.AuthHeader != "" {
			req.Header.Set(s.cfg.AuthHeader, s.cfg.AuthValue)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL error repeats the URL with its query; keep the cause,
		// told without any resolved address.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("httpsend: post %s: %w", redact(s.url), netguard.Sanitize(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var hec struct {
		Code *int `json:"code"`
	}
	code := -1
	if s.cfg.HEC && json.Unmarshal(body, &hec) == nil && hec.Code != nil {
		code = *hec.Code
	}
	text := hecCodes[code]
	switch {
	case resp.StatusCode/100 == 3:
		return &StatusError{Status: resp.StatusCode, HECCode: code, Text: "redirects are not followed"}
	case resp.StatusCode/100 == 2:
		if s.cfg.HEC && code > 0 {
			return &StatusError{Status: resp.StatusCode, HECCode: code, Text: text}
		}
		return nil
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: HTTP 413 (%d bytes)", transport.ErrTooLarge, buf.Len())
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		wait := time.Second
		if v, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && v >= 0 {
			wait = time.Duration(v) * time.Second
		}
		return &transport.RetryAfterError{Wait: wait, Err: &StatusError{Status: resp.StatusCode, HECCode: code, Text: text}}
	}
	return &StatusError{Status: resp.StatusCode, HECCode: code, Text: text}
}

// Close releases idle connections.
func (s *Sender) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// redact drops userinfo and the query from a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
