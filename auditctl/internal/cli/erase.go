package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

const eraseUsage = `usage:
  auditctl erase --org ORG --subject ID [--reference TEXT]
      erase a person's personal data from the org's log (a data-protection erasure): the
      name, email, IP address and user agent of the entries where ID is the actor, and the
      name where ID is a target, are replaced by their commitments and the person's salt is
      deleted; every checkpoint and proof stays valid. Needs an operator token with
      audit.erase for ORG and ID, signed with the purge key (auditd token -purge -perm
      audit.erase -org ORG -erase-subject ID).
      The erasure is recorded in the org's log (audit.subject_erased) with --reference, the
      data-protection request it answers (never personal data).`

// runErase calls POST /v1/orgs/{org}/erasures and prints the answer.
func runErase(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("erase", env)
	var c conn
	c.register(fs, env)
	org := fs.String("org", "", "org whose log is erased from (must be the token's org)")
	subject := fs.String("subject", "", "actor or target id of the person")
	ref := fs.String("reference", "", "data-protection request reference, e.g. a ticket id")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *org == "" || *subject == "" {
		return fmt.Errorf("%w: --org and --subject are required\n%s", errUsage, eraseUsage)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	body := map[string]string{"subject": *subject}
	if *ref != "" {
		body["request_reference"] = *ref
	}
	var out struct {
		OrgID       string `json:"org_id"`
		Subject     string `json:"subject"`
		RecordID    string `json:"record_id"`
		Erased      int    `json:"events_erased"`
		Kept        int    `json:"events_kept"`
		SaltDeleted bool   `json:"salt_deleted"`
	}
	if err := cl.JSON(ctx, http.MethodPost, "/v1/orgs/"+url.PathEscape(*org)+"/erasures", body, &out); err != nil {
		return err
	}
	if out.Kept > 0 {
		fmt.Fprintf(env.Stderr, "%d entries naming %s keep their plaintext (logged after the erasure under a new salt, or not logged yet); repeat the erasure to cover them\n", out.Kept, out.Subject)
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
