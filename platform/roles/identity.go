package roles

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/topology"
)

// Identities is the NATS identity (package natsauth) each role connects
// as. The shared roles are not listed: Topology connects as the admin in
// the topology owner and as the process's identity elsewhere; Settings and
// Recorder connect as the api when the process runs the Query role (it
// writes settings and records its own actions) and as the process's
// identity otherwise. A process's identity is that of the first role it
// was asked to run: ingestor, api (query), webhook-dispatcher,
// siem-forwarder, or admin for `auditd topology`. The log writer connects
// as tlog wherever it runs, so the ingestor binary, which runs it, holds
// two identities (AUDIT_NATS_CREDS a directory of ingestor.nk and tlog.nk).
var Identities = map[string]natsauth.Role{
	Topology:    natsauth.Admin,
	Ingestor:    natsauth.Ingestor,
	Webhooks:    natsauth.Dispatcher,
	WebhooksAPI: natsauth.API,
	SIEM:        natsauth.Forwarder,
	SIEMAPI:     natsauth.API,
	Query:       natsauth.API,
	Ingest:      natsauth.Producer,
	Tlog:        natsauth.Tlog,
	Demo:        natsauth.Producer,
}

// Identity is the NATS identity role connects as in p.
func (p *Process) Identity(role string) natsauth.Role {
	p.mu.Lock()
	first, query := p.first, p.running[Query]
	p.mu.Unlock()
	switch role {
	case Topology:
		if p.Owner {
			return natsauth.Admin
		}
		return p.own(first)
	case Settings, Recorder:
		if query {
			return natsauth.API
		}
		return p.own(first)
	}
	if id, ok := Identities[role]; ok {
		return id
	}
	return p.own(first)
}

func (p *Process) own(first string) natsauth.Role {
	if first == Topology && !p.Owner {
		return natsauth.API
	}
	if id, ok := Identities[first]; ok {
		return id
	}
	return natsauth.API
}

// Runs reports whether p runs role.
func (p *Process) Runs(role string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running[role]
}

// JetStream returns the JetStream context of role's connection.
func (p *Process) JetStream(role string) (jetstream.JetStream, error) {
	id := p.Identity(role)
	p.mu.Lock()
	js := p.jss[id]
	p.mu.Unlock()
	if js != nil {
		return js, nil
	}
	nc, err := p.Conn(role)
	if err != nil {
		return nil, err
	}
	if js, err = jetstream.New(nc); err != nil {
		return nil, fmt.Errorf("jetstream as %s: %w", id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jss == nil {
		p.jss = map[natsauth.Role]jetstream.JetStream{}
	}
	if have := p.jss[id]; have != nil {
		return have, nil
	}
	p.jss[id] = js
	return js, nil
}

// Buckets returns what role opens its key-value buckets with. In the
// topology owner a bucket is created or updated as the admin identity and
// then opened on role's own connection; everywhere else it is bound and
// verified (topology.Bind), never created.
func (p *Process) Buckets(role string) (jetstream.JetStream, error) {
	js, err := p.JetStream(role)
	if err != nil {
		return nil, err
	}
	if p.Owner {
		if p.Identity(role) == natsauth.Admin {
			return js, nil
		}
		return ownerBuckets{JetStream: js, admin: p.JS}, nil
	}
	if p.Verifier == nil {
		return nil, fmt.Errorf("roles: the topology role has not started")
	}
	return topology.Bind(js, p.Verifier), nil
}

// ownerBuckets creates or updates buckets with the admin's context and
// opens them with the role's.
type ownerBuckets struct {
	jetstream.JetStream
	admin jetstream.JetStream
}

func (o ownerBuckets) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if _, err := o.admin.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
		return nil, err
	}
	return o.JetStream.KeyValue(ctx, cfg.Bucket)
}

func (o ownerBuckets) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return o.CreateOrUpdateKeyValue(ctx, cfg)
}

func (o ownerBuckets) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return o.CreateOrUpdateKeyValue(ctx, cfg)
}
