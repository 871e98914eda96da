// Package cli implements auditctl's commands: events, tail, export, token,
// webhooks, siem, service-keys, verify and erase. Main parses the
// arguments and runs one command; the environment (streams, variables,
// clock) comes in through Env so that tests run the commands in process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/takumo/audit/auditctl/internal/client"
)

// DefaultURL is the server auditctl talks to without AUDIT_URL or --url:
// auditd as `make run` starts it.
const DefaultURL = "http://127.0.0.1:8080"

// Env is what a command reads and writes besides its arguments.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads configuration variables (os.Getenv).
	Getenv func(string) string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Interactive makes export redraw its progress line on Stderr (a
	// terminal); otherwise it reports once at the end.
	Interactive bool
}

// errUsage marks an error in the command line: exit status 2.
var errUsage = errors.New("usage")

const usage = `auditctl: the Takumo Audit command-line tool

usage: auditctl [--url URL] [--token JWT] COMMAND [flags]

commands:
  auditctl events [filters] [-n N] [-o table|json|ndjson]   list events, newest first
  auditctl tail [filters] [--interval 2s]                   follow new events as they are recorded
  auditctl export --format csv|ndjson [filters] > file      every matching event, progress on stderr
  auditctl token --org ORG --perm audit.read[,...] [--ttl 1h]
                                                            mint a development token
  auditctl webhooks list|get|create|update|delete|test|rotate-secret|deliveries|recover
                                                            manage webhook endpoints (audit.manage)
  auditctl siem list|get|create|update|delete|test|status|pause|resume|replay
                                                            manage SIEM destinations (audit.manage)
  auditctl service-keys list|get|create|revoke              manage the HTTP ingest API's service keys
                                                            (audit.manage, or audit.operator for any orgs)
  auditctl verify --export FILE --checkpoint FILE --key VKEY  check an export against signed checkpoints,
                                                            offline (also: verify consistency|inclusion)
  auditctl erase --org ORG --subject ID [--reference TEXT]  erase a person's personal data from the org's log,
                                                            every proof kept (operator token with audit.erase)
  auditctl help                                             this text

filters (repeat a flag for alternatives):
  --actor ID  --action NAME|GLOB  --category NAME  --target ID  --outcome success|failure
  --since T  --until T   (RFC 3339, YYYY-MM-DD, or a duration back from now: 15m, 24h, 7d)
  -q 'QUERY'             the search syntax of the log page: words, qualifier:value, created:>=2026-01-01

configuration (before or after the command):
  --url URL     or AUDIT_URL    server (default ` + DefaultURL + `)
  --token JWT   or AUDIT_TOKEN  bearer token

Run 'auditctl COMMAND -h' for a command's flags.
`

// Main runs the command of args and returns the process exit status: 0,
// 1 on failure, 2 on a usage error.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	err := run(ctx, args, env)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(env.Stderr, "auditctl:", err)
		return 2
	case errors.Is(err, errVerification):
		return 1 // the verdict is on stdout
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return 0 // interrupted: tail's normal end
	default:
		fmt.Fprintln(env.Stderr, "auditctl:", err)
		return 1
	}
}

func run(ctx context.Context, args []string, env Env) error {
	args, env, err := globalFlags(args, env)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return fmt.Errorf("%w: name a command", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	case "events":
		return runEvents(ctx, rest, env)
	case "tail":
		return runTail(ctx, rest, env)
	case "export":
		return runExport(ctx, rest, env)
	case "token":
		return runToken(rest, env)
	case "webhooks":
		return runWebhooks(ctx, rest, env)
	case "siem":
		return runSIEM(ctx, rest, env)
	case "service-keys":
		return runServiceKeys(ctx, rest, env)
	case "verify":
		return runVerify(rest, env)
	case "erase":
		return runErase(ctx, rest, env)
	}
	return fmt.Errorf("%w: unknown command %q (auditctl help lists them)", errUsage, cmd)
}

// globalFlags takes --url and --token given before the command. Their
// values stand in for AUDIT_URL and AUDIT_TOKEN, so a command's own flags
// still win. It returns the command and its arguments.
func globalFlags(args []string, env Env) ([]string, Env, error) {
	fs := flag.NewFlagSet("auditctl", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {}
	var url, token string
	fs.StringVar(&url, "url", "", "server URL (AUDIT_URL)")
	fs.StringVar(&token, "token", "", "bearer token (AUDIT_TOKEN)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(env.Stdout, usage)
			return nil, env, err
		}
		return nil, env, fmt.Errorf("%w: %v", errUsage, err)
	}
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set["AUDIT_"+strings.ToUpper(f.Name)] = f.Value.String() })
	if len(set) > 0 {
		getenv := env.Getenv
		env.Getenv = func(k string) string {
			if v, ok := set[k]; ok {
				return v
			}
			return getenv(k)
		}
	}
	return fs.Args(), env, nil
}

// conn holds the server flags every API command takes.
type conn struct {
	url, token string
	getenv     func(string) string
}

func (c *conn) register(fs *flag.FlagSet, env Env) {
	def := env.Getenv("AUDIT_URL")
	if def == "" {
		def = DefaultURL
	}
	c.getenv = env.Getenv
	fs.StringVar(&c.url, "url", def, "server URL (AUDIT_URL)")
	// The token's default is read when the command runs, not shown in -h.
	fs.StringVar(&c.token, "token", "", "bearer token (default: AUDIT_TOKEN)")
}

func (c *conn) client() (*client.Client, error) {
	tok := strings.TrimSpace(c.token)
	if tok == "" && c.getenv != nil {
		tok = strings.TrimSpace(c.getenv("AUDIT_TOKEN"))
	}
	if tok == "" {
		return nil, errors.New("no token: set AUDIT_TOKEN or --token (development: export AUDIT_TOKEN=$(auditctl token --org org_acme --perm audit.read,audit.export))")
	}
	return client.New(c.url, tok, nil)
}

// filters are the event filter flags.
type filters struct {
	actor, action, category, target, outcome multi
	since, until, q                          string
}

type multi []string

func (m *multi) String() string { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error {
	*m = append(*m, s)
	return nil
}

func (f *filters) register(fs *flag.FlagSet, withTime bool) {
	fs.Var(&f.actor, "actor", "actor id (repeatable)")
	fs.Var(&f.action, "action", "action, exact or a glob like member.* (repeatable)")
	fs.Var(&f.category, "category", "category (repeatable)")
	fs.Var(&f.target, "target", "target id (repeatable)")
	fs.Var(&f.outcome, "outcome", "success or failure")
	fs.StringVar(&f.q, "q", "", "search query: words, qualifier:value, created:... (see docs/query.md)")
	if withTime {
		fs.StringVar(&f.since, "since", "", "from this time: RFC 3339, YYYY-MM-DD or a duration back from now (24h, 7d)")
		fs.StringVar(&f.until, "until", "", "before this time: same forms as --since")
	}
}

// values returns the filter as query parameters.
func (f *filters) values(now time.Time) (url.Values, error) {
	v := url.Values{}
	for name, vals := range map[string]multi{"actor": f.actor, "action": f.action, "category": f.category, "target": f.target, "outcome": f.outcome} {
		for _, s := range vals {
			v.Add(name, s)
		}
	}
	if f.q != "" {
		v.Set("q", f.q)
	}
	for name, s := range map[string]string{"since": f.since, "until": f.until} {
		if s == "" {
			continue
		}
		t, err := parseWhen(s, now)
		if err != nil {
			return nil, fmt.Errorf("%w: --%s: %v", errUsage, name, err)
		}
		v.Set(name, t)
	}
	return v, nil
}

// parseWhen accepts what the API accepts (RFC 3339, YYYY-MM-DD) and a
// duration back from now (90s, 15m, 24h, 7d).
func parseWhen(s string, now time.Time) (string, error) {
	if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return s, nil
	}
	if _, err := time.Parse(time.DateOnly, s); err == nil {
		return s, nil
	}
	d, err := parseAgo(s)
	if err != nil {
		return "", fmt.Errorf("%q is not RFC 3339, YYYY-MM-DD or a duration like 24h or 7d", s)
	}
	return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
}

func parseAgo(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != days {
			return 0, errors.New("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("bad duration")
	}
	return d, nil
}

// parseFlags parses args into fs, refusing stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// subcommand starts a command group (webhooks, siem, service-keys): with
// no subcommand, or help, it prints usage and returns sub "" and the
// error to return (an errUsage without a subcommand); otherwise the
// subcommand, its arguments, its flag set and the connection flags
// registered on it.
func subcommand(group, usage string, args []string, env Env) (sub string, rest []string, fs *flag.FlagSet, c *conn, err error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(env.Stderr, usage)
		if len(args) == 0 {
			return "", nil, nil, nil, fmt.Errorf("%w: name a %s command", errUsage, group)
		}
		return "", nil, nil, nil, nil
	}
	fs = newFlagSet(group+" "+args[0], env)
	c = &conn{}
	c.register(fs, env)
	return args[0], args[1:], fs, c, nil
}

func newFlagSet(name string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet("auditctl "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}
