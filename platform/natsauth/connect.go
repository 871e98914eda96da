package natsauth

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Options are the connection options of id: its nkey and its role's
// inbox prefix.
func Options(id Identity) ([]nats.Option, error) {
	kp, err := nkeys.FromSeed(id.Seed)
	if err != nil {
		return nil, fmt.Errorf("natsauth: %s seed: %w", id.Role, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("natsauth: %s: %w", id.Role, err)
	}
	sign := func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }
	return []nats.Option{nats.Nkey(pub, sign), nats.CustomInboxPrefix(id.Role.InboxPrefix())}, nil
}

// ClientConfig is how a standalone role connects to an external server:
// AUDIT_NATS_CREDS and AUDIT_NATS_CA in every main.
type ClientConfig struct {
	// CredsFile is the role's nkey seed file (what `auditd nats-creds`
	// writes), or a .creds file (user JWT and seed) for servers in operator
	// mode.
	CredsFile string
	// CAFile is the PEM bundle the server's TLS certificate is checked
	// against; empty uses the system roots when the URL is tls://.
	CAFile string
}

// ErrNoCredentials is returned by ClientConfig.Options without a
// credentials file: a role never connects anonymously.
var ErrNoCredentials = errors.New("natsauth: no credentials file (set AUDIT_NATS_CREDS to the role's nkey seed file)")

// Options returns the connection options of role r with c's files.
func (c ClientConfig) Options(r Role) ([]nats.Option, error) {
	if c.CredsFile == "" {
		return nil, ErrNoCredentials
	}
	b, err := os.ReadFile(c.CredsFile)
	if err != nil {
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	var opts []nats.Option
	if strings.Contains(string(b), "BEGIN NATS USER JWT") {
		opts = []nats.Option{nats.UserCredentials(c.CredsFile), nats.CustomInboxPrefix(r.InboxPrefix())}
	} else {
		id, err := ParseSeed(r, b)
		if err != nil {
			return nil, err
		}
		if opts, err = Options(id); err != nil {
			return nil, err
		}
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	return opts, nil
}
