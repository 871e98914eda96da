package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/takumo/audit/auditctl/internal/client"
	"github.com/takumo/audit/platform/auditapi"
)

// webhooksPrefix is where the query service serves the webhook management
// API (webhook-dispatcher/manage).
const webhooksPrefix = "/v1/webhooks/endpoints"

const webhooksUsage = `usage:
  auditctl webhooks list
  auditctl webhooks get ID
  auditctl webhooks create --endpoint URL [--filter ACTION]... [--description TEXT] [--disabled]
  auditctl webhooks delete ID
  auditctl webhooks test ID
  auditctl webhooks rotate-secret ID
  auditctl webhooks deliveries ID [--limit N]
Answers are printed as JSON. Every command needs audit.manage and the Enterprise plan.`

// runWebhooks calls the webhook management API. The answers are printed
// as the API gives them (indented JSON), so the tool follows the API.
func runWebhooks(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(env.Stderr, webhooksUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: name a webhooks command", errUsage)
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("webhooks "+sub, env)
	var c conn
	c.register(fs, env)
	var (
		hookURL, desc string
		filters       multi
		disabled      bool
		limit         int
	)
	switch sub {
	case "create":
		fs.StringVar(&hookURL, "endpoint", "", "receiver URL (https)")
		fs.StringVar(&desc, "description", "", "description")
		fs.Var(&filters, "filter", "action or glob to deliver, e.g. member.* (repeatable; none: every action)")
		fs.BoolVar(&disabled, "disabled", false, "create it disabled")
	case "deliveries":
		fs.IntVar(&limit, "limit", 50, "most attempts to show (at most 1000)")
	}
	// The id comes first, flags after it.
	var id string
	if sub != "list" && sub != "create" {
		if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
			return fmt.Errorf("%w: auditctl webhooks %s ID", errUsage, sub)
		}
		id, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	path := webhooksPrefix
	if id != "" {
		path += "/" + url.PathEscape(id)
	}
	var method string
	var body any
	switch sub {
	case "list", "get":
		method = http.MethodGet
	case "create":
		if hookURL == "" {
			return fmt.Errorf("%w: --endpoint is required", errUsage)
		}
		m := map[string]any{"url": hookURL}
		if desc != "" {
			m["description"] = desc
		}
		if len(filters) > 0 {
			m["filters"] = []string(filters)
		}
		if disabled {
			m["enabled"] = false
		}
		method, body = http.MethodPost, m
	case "delete":
		method = http.MethodDelete
	case "test", "rotate-secret":
		method, path = http.MethodPost, path+"/"+sub
		body = map[string]any{}
	case "deliveries":
		method, path = http.MethodGet, path+"/deliveries?limit="+strconv.Itoa(limit)
	default:
		fmt.Fprintln(env.Stderr, webhooksUsage)
		return fmt.Errorf("%w: unknown webhooks command %q", errUsage, sub)
	}
	var out json.RawMessage
	var dst any = &out
	if method == http.MethodDelete {
		dst = nil
	}
	if err := cl.JSON(ctx, method, path, body, dst); err != nil {
		return notServed(err, "webhook management API", "webhook-dispatcher/manage")
	}
	if dst == nil {
		fmt.Fprintln(env.Stderr, "deleted", id)
		return nil
	}
	if sub == "create" {
		fmt.Fprintln(env.Stderr, "the endpoint's signing secret is in the answer and is shown only once: store it now")
	}
	var pretty any
	if json.Unmarshal(out, &pretty) != nil {
		_, err := fmt.Fprintln(env.Stdout, string(out))
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(pretty)
}

// notServed turns the router's 404 for a whole API into a clear message.
func notServed(err error, api, module string) error {
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code() == auditapi.CodeNotFound && ae.Problem.Detail == "no such resource" {
		return fmt.Errorf("this server does not serve the %s yet (%s is not mounted by the query service): %w", api, module, err)
	}
	return err
}
