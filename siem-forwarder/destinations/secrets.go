package destinations

import (
	"fmt"

	"github.com/takumo/audit/platform/destination"
)

func sealContext(orgID, id, name string) string { return "siem:" + orgID + ":" + id + ":" + name }

func (s Secrets) named() map[string]destination.Secret {
	return map[string]destination.Secret{"token": s.Token, "auth_value": s.AuthValue, "client_key_pem": s.ClientKeyPEM}
}

// Secrets opens the destination's sealed credentials.
func (s *Store) Secrets(d Destination) (Secrets, error) {
	var out Secrets
	for name, sealed := range d.Sealed {
		plain, err := s.box.Open(sealed, sealContext(d.OrgID, d.ID, name))
		if err != nil {
			return Secrets{}, fmt.Errorf("destinations: %s of %s: %w", name, d.ID, err)
		}
		v := destination.NewSecret(string(plain))
		switch name {
		case "token":
			out.Token = v
		case "auth_value":
			out.AuthValue = v
		case "client_key_pem":
			out.ClientKeyPEM = v
		}
	}
	return out, nil
}

func (s *Store) seal(d *Destination, sec Secrets) {
	d.Sealed = map[string]string{}
	for name, v := range sec.named() {
		if v.IsSet() {
			d.Sealed[name] = s.box.Seal([]byte(v.Reveal()), sealContext(d.OrgID, d.ID, name))
		}
	}
}
