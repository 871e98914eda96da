package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

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
  auditctl webhooks update ID [--endpoint URL] [--filter ACTION]... [--all-actions] [--description TEXT]
        [--enable | --disable]       change what is given; --enable re-enables a disabled endpoint
  auditctl webhooks delete ID
  auditctl webhooks test ID
  auditctl webhooks rotate-secret ID
  auditctl webhooks deliveries ID [--limit N]
  auditctl webhooks recover ID --since T [--until T]
                                     deliver again the stored events of that range (T: RFC 3339,
                                     YYYY-MM-DD or a duration back from now, 24h)
Answers are printed as JSON. Every command needs audit.manage and the Enterprise plan.`

// runWebhooks calls the webhook management API. The answers are printed
// as the API gives them (indented JSON), so the tool follows the API.
func runWebhooks(ctx context.Context, args []string, env Env) error {
	sub, args, fs, c, err := subcommand("webhooks", webhooksUsage, args, env)
	if sub == "" {
		return err
	}
	var (
		hookURL, desc string
		filters       multi
		disabled      bool
		enable        bool
		allActions    bool
		limit         int
		since, until  string
	)
	switch sub {
	case "create":
		fs.StringVar(&hookURL, "endpoint", "", "receiver URL (https)")
		fs.StringVar(&desc, "description", "", "description")
		fs.Var(&filters, "filter", "action or glob to deliver, e.g. member.* (repeatable; none: every action)")
		fs.BoolVar(&disabled, "disabled", false, "create it disabled")
	case "update":
		fs.StringVar(&hookURL, "endpoint", "", "new receiver URL (https)")
		fs.StringVar(&desc, "description", "", "new description")
		fs.Var(&filters, "filter", "action or glob to deliver, e.g. member.* (repeatable; replaces the filters)")
		fs.BoolVar(&allActions, "all-actions", false, "remove the filters: deliver every action")
		fs.BoolVar(&enable, "enable", false, "enable the endpoint (again)")
		fs.BoolVar(&disabled, "disable", false, "disable the endpoint")
	case "deliveries":
		fs.IntVar(&limit, "limit", 50, "most attempts to show (at most 1000)")
	case "recover":
		fs.StringVar(&since, "since", "", "from this time (required): RFC 3339, YYYY-MM-DD or a duration back from now (24h, 7d)")
		fs.StringVar(&until, "until", "", "before this time (default now): same forms as --since")
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
	case "update":
		set := visited(fs)
		m := map[string]any{}
		if set["endpoint"] {
			m["url"] = hookURL
		}
		if set["description"] {
			m["description"] = desc
		}
		switch {
		case allActions && len(filters) > 0:
			return fmt.Errorf("%w: --all-actions and --filter exclude each other", errUsage)
		case allActions:
			m["filters"] = []string{}
		case len(filters) > 0:
			m["filters"] = []string(filters)
		}
		switch {
		case enable && disabled:
			return fmt.Errorf("%w: --enable and --disable exclude each other", errUsage)
		case enable:
			m["enabled"] = true
		case disabled:
			m["enabled"] = false
		}
		if len(m) == 0 {
			return fmt.Errorf("%w: name what to change: --endpoint, --filter, --all-actions, --description, --enable or --disable", errUsage)
		}
		method, body = http.MethodPatch, m
	case "recover":
		if since == "" {
			return fmt.Errorf("%w: --since is required", errUsage)
		}
		m := map[string]any{}
		for name, v := range map[string]string{"since": since, "until": until} {
			if v == "" {
				continue
			}
			t, err := parseWhen(v, env.Now())
			if err != nil {
				return fmt.Errorf("%w: --%s: %v", errUsage, name, err)
			}
			if !strings.Contains(t, "T") {
				t += "T00:00:00Z" // the API takes RFC 3339
			}
			m[name] = t
		}
		method, path, body = http.MethodPost, path+"/recover", m
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
	if sub == "recover" {
		fmt.Fprintln(env.Stderr, "deliveries queued; `auditctl webhooks deliveries "+id+"` shows how they went")
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

// visited returns the names of the flags given on the command line.
func visited(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
