package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/takumo/audit/platform/auditapi"
)

// keysPrefix is where the HTTP ingest API serves its service keys
// (platform/ingestapi).
const keysPrefix = "/v1/service-keys"

const keysUsage = `usage:
  auditctl service-keys create --service NAME [--org ORG]... [--action FILTER]... [--rate N] [--burst N]
                                     issue a key for POST /v1/events; the key is printed once
  auditctl service-keys list
  auditctl service-keys get ID
  auditctl service-keys revoke ID   refuse every request made with the key from now on
An audit.manage token manages its own org's keys (--org defaults to it); an audit.operator
token issues keys for any orgs. Answers are printed as JSON.`

// runServiceKeys calls the service keys routes of the ingest API.
func runServiceKeys(ctx context.Context, args []string, env Env) error {
	sub, args, fs, c, err := subcommand("service-keys", keysUsage, args, env)
	if sub == "" {
		return err
	}
	var (
		service      string
		orgs, action multi
		rate         float64
		burst        int
	)
	if sub == "create" {
		fs.StringVar(&service, "service", "", "name of the service the key is for (required): a-z, 0-9, _ and -")
		fs.Var(&orgs, "org", "org the key may write for (repeatable; default: the token's org)")
		fs.Var(&action, "action", "action or glob the key may write, e.g. billing.* (repeatable; none: every action)")
		fs.Float64Var(&rate, "rate", 0, "requests per second the key may make (0: the server's default)")
		fs.IntVar(&burst, "burst", 0, "burst of requests (0: the server's default)")
	}
	var id string
	if sub == "get" || sub == "revoke" {
		if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
			return fmt.Errorf("%w: auditctl service-keys %s ID", errUsage, sub)
		}
		id, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var method, path = http.MethodGet, keysPrefix
	var body any
	switch sub {
	case "list":
	case "get":
		path += "/" + url.PathEscape(id)
	case "revoke":
		method, path = http.MethodDelete, path+"/"+url.PathEscape(id)
	case "create":
		if service == "" {
			return fmt.Errorf("%w: --service is required", errUsage)
		}
		method, body = http.MethodPost, auditapi.ServiceKeySpec{Service: service, Orgs: orgs, Actions: action, RatePerSecond: rate, Burst: burst}
	default:
		fmt.Fprintln(env.Stderr, keysUsage)
		return fmt.Errorf("%w: unknown service-keys command %q", errUsage, sub)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var out json.RawMessage
	if err := cl.JSON(ctx, method, path, body, &out); err != nil {
		return notServed(err, "HTTP ingest API", "platform/ingestapi")
	}
	if sub == "create" {
		fmt.Fprintln(env.Stderr, "the key is in the answer (\"key\") and is shown only once: store it now")
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
