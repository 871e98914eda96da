// Package client calls the Takumo Audit HTTP APIs (the query service and
// the webhook and SIEM management APIs): pages of events, the streamed
// export and plain JSON requests, with errors built from the APIs' one
// problem format (auditapi.Problem) so that they say what to do.
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

	"github.com/takumo/audit/platform/auditapi"
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

// APIError is an error answer of an API, with its problem details.
type APIError struct {
	Status  int
	Problem auditapi.Problem
	// RetryAfter is the server's Retry-After, when given.
	RetryAfter time.Duration
}

// Code is the stable problem code, e.g. "plan-not-available"; "" when the
// answer was not one of the APIs' problems (a proxy's error page).
func (e *APIError) Code() string { return e.Problem.Code() }

// Error says what went wrong and what to do about it, for every problem
// code.
func (e *APIError) Error() string {
	p := e.Problem
	d := p.Detail
	if d == "" {
		d = p.Title
	}
	if d == "" {
		d = http.StatusText(e.Status)
	}
	switch e.Code() {
	case auditapi.CodeUnauthorized:
		return "the server refused the token (" + d + "): set AUDIT_TOKEN or --token to a valid token; for development mint one with `auditctl token --org <org> --perm audit.read`"
	case auditapi.CodeForbidden:
		if perm := missingPerm(d); perm != "" {
			return "permission denied: the token lacks " + perm + "; ask your organization's owner for a token with it (development: `auditctl token --org <org> --perm " + perm + "`)"
		}
		return "permission denied: " + d + "; use a token of the organization with the permission the command needs"
	case auditapi.CodePlan:
		if !strings.Contains(d, "plan") {
			d = "not available on the organization's plan: " + d
		}
		return d + " Upgrading the organization's plan makes it available."
	case auditapi.CodeNotFound:
		return "not found: " + d + "; check the id (the list command shows the ids) and that the token is of the right organization"
	case auditapi.CodeMethodNotAllowed:
		return "the server does not accept this request (" + d + "); auditctl and the server may be different versions: use the auditctl of the server's release"
	case auditapi.CodeInvalidParameter, auditapi.CodeInvalidBody:
		msg := "invalid request: " + d
		if p.Parameter != "" && !strings.HasPrefix(d, p.Parameter+":") {
			msg = "invalid " + p.Parameter + ": " + d
		} else if p.Parameter != "" {
			msg = "invalid " + d
		}
		if len(p.Errors) > 1 {
			msg += "\n  " + strings.Join(p.Errors, "\n  ")
		}
		return msg + "\nfix the value and run the command again (`auditctl COMMAND -h` lists the flags)"
	case auditapi.CodeConflict:
		return "conflict: " + d
	case auditapi.CodeTooLarge:
		return "the request is too large (" + d + "): send less, e.g. shorter certificates or fewer filters"
	case auditapi.CodeUnsupportedMediaType:
		return "the server does not take this body's content type (" + d + "): send JSON with Content-Type: application/json"
	case auditapi.CodeURITooLong:
		return "the query is too long (" + d + "): use fewer or shorter filters"
	case auditapi.CodeRateLimited:
		wait := e.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		return fmt.Sprintf("rate limited: this token's request budget is spent; retry in %s", wait)
	case auditapi.CodeNotRecorded:
		return "the change was applied but its audit event could not be recorded (" + d + "): run the same command again to record it"
	case auditapi.CodeDestinationFailed:
		return "the destination failed: " + d + "; check its address, credentials and TLS settings, and that it accepts connections from the server"
	case auditapi.CodeNotImplemented:
		return "this server does not offer that: " + d
	case auditapi.CodeUnavailable:
		return "the server cannot answer now: " + d + "; retry in a moment, or ask the operator if it persists"
	case auditapi.CodeInternal:
		return "the server failed (" + d + "); its log has the details: retry, and report it to the operator if it persists"
	}
	return fmt.Sprintf("%s (HTTP %d): is --url the Takumo Audit server?", d, e.Status)
}

func missingPerm(detail string) string {
	for _, p := range auditapi.KnownPermissions {
		if strings.Contains(detail, "lacks the "+p) || strings.Contains(detail, "lacks "+p) {
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
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	e := &APIError{Status: res.StatusCode, Problem: auditapi.DecodeProblem(res.StatusCode, b)}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return nil, e
}
