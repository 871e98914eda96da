// Package client calls the Takumo Audit query API: pages of events, the
// streamed export and plain JSON requests, with errors built from the API's
// problem details so that they say what to do.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
)

// Client calls one server with one bearer token. It is safe for
// concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// UserAgent is sent on every request.
	UserAgent string
}

// New returns a client of the server at baseURL (scheme and host, e.g.
// http://127.0.0.1:8080). The token may be empty for public routes.
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http(s)://host[:port]", baseURL)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, token: token, http: hc, UserAgent: "auditctl"}, nil
}

// Page is one page of GET /v1/events.
type Page struct {
	Data       []schemas.Event `json:"data"`
	NextCursor *string         `json:"next_cursor"`
}

// APIError is an error answer of the API, with its problem details.
type APIError struct {
	Status  int
	Problem query.Problem
	// RetryAfter is the server's Retry-After, when given.
	RetryAfter time.Duration
}

// Code is the stable problem code, e.g. "plan-not-available".
func (e *APIError) Code() string { return strings.TrimPrefix(e.Problem.Type, query.ProblemTypePrefix) }

// Error says what went wrong and, where it can, what to do about it.
func (e *APIError) Error() string {
	d := e.Problem.Detail
	if d == "" {
		d = e.Problem.Title
	}
	if d == "" {
		d = http.StatusText(e.Status)
	}
	switch e.Code() {
	case query.CodeUnauthorized:
		return "the server refused the token (" + d + "): set AUDIT_TOKEN or --token to a valid token; for development mint one with `auditctl token --org <org> --perm audit.read`"
	case query.CodeForbidden:
		if perm := missingPerm(d); perm != "" {
			return "permission denied: the token lacks " + perm + "; ask your organization's owner for a token with it (development: `auditctl token --org <org> --perm " + perm + "`)"
		}
		return "permission denied: " + d
	case query.CodePlan:
		if strings.Contains(d, "Free plan") {
			return d
		}
		return "not available on the Free plan: " + d
	case query.CodeInvalidParameter:
		if e.Problem.Parameter != "" && !strings.HasPrefix(d, e.Problem.Parameter+":") {
			return "invalid " + e.Problem.Parameter + ": " + d
		}
		return "invalid request: " + d
	case query.CodeRateLimited:
		return fmt.Sprintf("rate limited: retry in %s", e.RetryAfter)
	}
	return fmt.Sprintf("%s (HTTP %d)", d, e.Status)
}

func missingPerm(detail string) string {
	for _, p := range query.KnownPermissions {
		if strings.Contains(detail, "lacks the "+p) {
			return p
		}
	}
	return ""
}

// Events returns one page of events matching q (the filter parameters,
// limit and cursor of GET /v1/events).
func (c *Client) Events(ctx context.Context, q url.Values) (Page, error) {
	var p Page
	err := c.JSON(ctx, http.MethodGet, "/v1/events?"+q.Encode(), nil, &p)
	return p, err
}

// Export streams GET /v1/export?format=... with the filter q into w. It
// calls progress (when not nil) as data arrives, with the bytes written so
// far. A connection cut by the server (an export that broke off) is an
// error, so a truncated file is never taken for a whole one.
func (c *Client) Export(ctx context.Context, q url.Values, w io.Writer, progress func(bytes int64)) (int64, error) {
	res, err := c.do(ctx, http.MethodGet, "/v1/export?"+q.Encode(), nil, "")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var n int64
	buf := make([]byte, 64<<10)
	for {
		k, rerr := res.Body.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("write: %w", err)
			}
			n += int64(k)
			if progress != nil {
				progress(n)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("the export broke off after %d bytes: %w", n, rerr)
		}
	}
}

// JSON sends a request with an optional JSON body and decodes a JSON answer
// into out (when not nil).
func (c *Client) JSON(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	ctype := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd, ctype = bytes.NewReader(b), "application/json"
	}
	res, err := c.do(ctx, method, path, rd, ctype)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil || res.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", c.UserAgent)
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach %s (is the server running? `make run` starts one; set AUDIT_URL or --url): %w", c.base, err)
	}
	if res.StatusCode/100 == 2 {
		return res, nil
	}
	defer res.Body.Close()
	e := &APIError{Status: res.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if json.Unmarshal(b, &e.Problem) != nil || e.Problem.Type == "" {
		e.Problem = query.Problem{Title: http.StatusText(res.StatusCode), Status: res.StatusCode, Detail: strings.TrimSpace(string(b))}
	}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return nil, e
}
