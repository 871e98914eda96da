package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// siemPrefix is where the SIEM destination management API
// (siem-forwarder/manage) is served.
const siemPrefix = "/v1/siem/destinations"

const siemUsage = `usage:
  auditctl siem list
  auditctl siem get ID
  auditctl siem create --name NAME --format syslog|cef|leef|hec|ocsf|ndjson --transport tcp|tls|udp|https --address ADDR
        [--framing octet-counting|lf] [--action GLOB]... [--hostname H] [--hec-index I] [--hec-sourcetype S]
        [--hec-token T] [--auth-header NAME --auth-value V] [--ca-file F] [--cert-file F --key-file F]
        [--server-name N] [--paused]
  auditctl siem update ID [any flag of create but --paused]
                                   change what is given; --FLAG "" clears an optional field or credential
  auditctl siem delete ID
  auditctl siem test ID            send one test event now
  auditctl siem status ID          state, last delivered event time, lag, last error
  auditctl siem pause ID
  auditctl siem resume ID          deliver again (re-enable), backlog first
  auditctl siem replay ID --from T deliver again what the stream still holds from T (RFC 3339, YYYY-MM-DD, 24h)
ADDR is host:port for tcp, tls and udp, an https URL for https. Credentials are write-only: the
API never shows them. Answers are printed as JSON. Every command needs audit.manage and the
Enterprise plan.`

// runSIEM calls the SIEM destination management API. The answers are
// printed as the API gives them (indented JSON), so the tool follows the API.
func runSIEM(ctx context.Context, args []string, env Env) error {
	sub, args, fs, c, err := subcommand("siem", siemUsage, args, env)
	if sub == "" {
		return err
	}
	// The global --url and --token are the server's, so the destination's
	// address and HEC token have flags of their own names.
	var (
		name, format, transport, address, framing, hostname, hecIndex, hecSourceType string
		hecToken, authHeader, authValue, caFile, certFile, keyFile, serverName       string
		actions                                                                      multi
		paused                                                                       bool
		from                                                                         string
	)
	switch sub {
	case "create", "update":
		fs.StringVar(&name, "name", "", "name of the destination")
		fs.StringVar(&format, "format", "", "syslog, cef, leef, hec, ocsf or ndjson")
		fs.StringVar(&transport, "transport", "", "tcp, tls or udp (syslog, cef, leef); https (hec, ocsf, ndjson)")
		fs.StringVar(&address, "address", "", "host:port, or the https URL")
		fs.StringVar(&framing, "framing", "", "octet-counting (default) or lf, for tcp and tls")
		fs.Var(&actions, "action", "action or glob to send, e.g. auth.* (repeatable; none: every action)")
		fs.StringVar(&hostname, "hostname", "", "syslog HOSTNAME / HEC host (default: the server's)")
		fs.StringVar(&hecIndex, "hec-index", "", "Splunk index")
		fs.StringVar(&hecSourceType, "hec-sourcetype", "", "Splunk sourcetype")
		fs.StringVar(&hecToken, "hec-token", "", "Splunk HEC token")
		fs.StringVar(&authHeader, "auth-header", "", "header carrying the credential of an ocsf or ndjson receiver")
		fs.StringVar(&authValue, "auth-value", "", "value of --auth-header")
		fs.StringVar(&caFile, "ca-file", "", "PEM file of the CA certificates to trust instead of the system's")
		fs.StringVar(&certFile, "cert-file", "", "PEM client certificate (mutual TLS)")
		fs.StringVar(&keyFile, "key-file", "", "PEM key of --cert-file")
		fs.StringVar(&serverName, "server-name", "", "name to verify in the receiver's certificate")
		if sub == "create" {
			fs.BoolVar(&paused, "paused", false, "create it paused")
		}
	case "replay":
		fs.StringVar(&from, "from", "", "replay from this time: RFC 3339, YYYY-MM-DD or a duration back from now (24h)")
	}
	// The id comes first, flags after it.
	var id string
	if sub != "list" && sub != "create" {
		if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
			return fmt.Errorf("%w: auditctl siem %s ID", errUsage, sub)
		}
		id, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := siemPrefix
	if id != "" {
		path += "/" + url.PathEscape(id)
	}
	var method string
	var body any
	// The API replaces the TLS settings as a whole: update keeps those
	// not given from the destination's current ones.
	var mergeTLS bool
	switch sub {
	case "list", "get":
		method = http.MethodGet
	case "create", "update":
		// create sends the fields given a value; update those given on
		// the command line, so that --FLAG "" clears one.
		set := visited(fs)
		given := func(flag, v string) bool { return set[flag] && (sub == "update" || v != "") }
		if sub == "create" {
			for flag, v := range map[string]string{"--name": name, "--format": format, "--transport": transport, "--address": address} {
				if v == "" {
					return fmt.Errorf("%w: %s is required", errUsage, flag)
				}
			}
		}
		m := map[string]any{}
		for _, f := range []struct{ flag, key, v string }{
			{"name", "name", name}, {"format", "format", format}, {"transport", "transport", transport},
			{"address", "address", address}, {"framing", "framing", framing}, {"hostname", "hostname", hostname},
			{"hec-index", "hec_index", hecIndex}, {"hec-sourcetype", "hec_sourcetype", hecSourceType},
			{"auth-header", "auth_header", authHeader},
		} {
			if given(f.flag, f.v) {
				m[f.key] = f.v
			}
		}
		if len(actions) > 0 {
			m["actions"] = []string(actions)
		}
		if paused {
			m["paused"] = true
		}
		tls := map[string]any{}
		if given("server-name", serverName) {
			tls["server_name"] = serverName
		}
		creds := map[string]any{}
		if given("hec-token", hecToken) {
			creds["token"] = hecToken
		}
		if given("auth-value", authValue) {
			creds["auth_value"] = authValue
		}
		for _, f := range []struct {
			flag, file string
			dst        map[string]any
			key        string
		}{{"ca-file", caFile, tls, "ca_pem"}, {"cert-file", certFile, tls, "cert_pem"}, {"key-file", keyFile, creds, "client_key_pem"}} {
			if !given(f.flag, f.file) {
				continue
			}
			if f.file == "" {
				f.dst[f.key] = ""
				continue
			}
			b, err := os.ReadFile(f.file)
			if err != nil {
				return err
			}
			f.dst[f.key] = string(b)
		}
		if len(tls) > 0 {
			m["tls"] = tls
			mergeTLS = sub == "update"
		}
		if len(creds) > 0 {
			m["credentials"] = creds
		}
		method, body = http.MethodPost, m
		if sub == "update" {
			if len(m) == 0 {
				return fmt.Errorf("%w: name what to change (auditctl siem -h lists the flags)", errUsage)
			}
			method = http.MethodPatch
		}
	case "delete":
		method = http.MethodDelete
	case "status":
		method, path = http.MethodGet, path+"/status"
	case "test", "pause", "resume":
		method, path, body = http.MethodPost, path+"/"+sub, map[string]any{}
	case "replay":
		if from == "" {
			return fmt.Errorf("%w: --from is required", errUsage)
		}
		t, err := parseWhen(from, env.Now())
		if err != nil {
			return fmt.Errorf("%w: --from: %v", errUsage, err)
		}
		if !strings.Contains(t, "T") {
			t += "T00:00:00Z" // the API takes RFC 3339
		}
		method, path, body = http.MethodPost, path+"/replay", map[string]any{"from": t}
	default:
		fmt.Fprintln(env.Stderr, siemUsage)
		return fmt.Errorf("%w: unknown siem command %q", errUsage, sub)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if mergeTLS {
		var cur struct {
			TLS map[string]any `json:"tls"`
		}
		if err := cl.JSON(ctx, http.MethodGet, path, nil, &cur); err != nil {
			return notServed(err, "SIEM destination management API", "siem-forwarder/manage")
		}
		tls := body.(map[string]any)["tls"].(map[string]any)
		for k, v := range cur.TLS {
			if _, ok := tls[k]; !ok {
				tls[k] = v
			}
		}
	}
	var out json.RawMessage
	var dst any = &out
	if method == http.MethodDelete {
		dst = nil
	}
	if err := cl.JSON(ctx, method, path, body, dst); err != nil {
		return notServed(err, "SIEM destination management API", "siem-forwarder/manage")
	}
	if dst == nil {
		fmt.Fprintln(env.Stderr, "deleted", id)
		return nil
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
