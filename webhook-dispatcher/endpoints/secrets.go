package endpoints

import (
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// openKey is a signing secret opened in memory.
type openKey struct {
	secret  destination.Secret
	expires *time.Time
}

// sealContext binds a sealed secret to its endpoint.
func sealContext(org, id string) string { return "webhook:" + org + ":" + id }

func seal(box *secretbox.Box, org, id string, s signing.Secret) string {
	return box.Seal(s, sealContext(org, id))
}

// openAll opens the endpoint's secrets; one that cannot be opened (a key
// missing from the configuration) is logged and left out.
func openAll(box *secretbox.Box, ep Endpoint, log *zap.Logger) []openKey {
	var keys []openKey
	for _, s := range ep.Secrets {
		raw, err := box.Open(s.Sealed, sealContext(ep.OrgID, ep.ID))
		if err != nil {
			// The error names the key id only, never the secret.
			log.Error("cannot open a webhook secret; is the secret key configured?", zap.String("org_id", ep.OrgID), zap.String("endpoint_id", ep.ID), zap.Error(err))
			continue
		}
		keys = append(keys, openKey{secret: destination.NewSecret(string(raw)), expires: s.ExpiresAt})
	}
	return keys
}
