package roles

// Role names.
const (
	// Ops serves /healthz, /readyz and /metrics, and the routes other
	// roles mount. It starts first so probes answer during start-up.
	Ops = "ops"
	// Bus is the NATS connection (and, in auditd, the embedded server).
	Bus = "bus"
	// Store is the ClickHouse event store.
	Store = "store"
	// Topology creates (owner) or verifies (everyone else) the shared
	// streams and consumers.
	Topology = "topology"
	// Settings is the org settings store (AUDIT_ORG_SETTINGS bucket).
	Settings = "settings"
	// Recorder records the services' own actions as audit events.
	Recorder = "recorder"
	// Ingestor stores events from AUDIT_EVENTS in ClickHouse.
	Ingestor = "ingestor"
	// Webhooks delivers events to webhook endpoints.
	Webhooks = "webhooks"
	// WebhooksAPI serves /v1/webhooks.
	WebhooksAPI = "webhooks-api"
	// SIEM forwards events to SIEM destinations.
	SIEM = "siem"
	// SIEMAPI serves /v1/siem.
	SIEMAPI = "siem-api"
	// Query serves the read API and the log page.
	Query = "query"
	// Tlog appends each org's events to its transparency log and signs
	// checkpoints (platform/tlog/logwriter); one instance is active.
	Tlog = "tlog"
	// TlogAPI serves /v1/integrity: checkpoints and proofs.
	TlogAPI = "tlog-api"
	// Catalog loads the action catalog: the built-in actions and those of
	// AUDIT_CATALOG_FILE. Every role that validates events uses it.
	Catalog = "catalog"
	// Ingest serves the HTTP ingest API (POST /v1/events), the service
	// keys routes (/v1/service-keys) and GET /v1/catalog. It publishes as
	// the producer identity and reads the keys as the api.
	Ingest = "ingest"
	// Demo emits demo events (auditd only).
	Demo = "demo"
)

// Deps is the dependency table: each role starts after the roles it lists
// and stops before them. A management API and the delivery role beside it
// share one opened store; whichever starts first opens it, so the API does
// not depend on delivery running in the same process.
var Deps = map[string][]string{
	Ops:         nil,
	Bus:         {Ops},
	Store:       {Ops},
	Topology:    {Bus},
	Settings:    {Topology},
	Recorder:    {Topology},
	Catalog:     {Ops},
	Ingestor:    {Store, Settings, Catalog},
	Webhooks:    {Settings, Recorder},
	SIEM:        {Settings},
	Query:       {Store, Settings, Recorder},
	WebhooksAPI: {Query},
	SIEMAPI:     {Query},
	Tlog:        {Store, Topology, Catalog},
	Ingest:      {Query, Catalog},
	TlogAPI:     {Query},
	Demo:        {Settings, Ingestor},
}

// Standalone role sets: what each binary runs. auditd runs them all. The
// ingestor binary runs the log writer too: its consumer holds every event
// of AUDIT_EVENTS until it is logged, so a deployment always runs it
// (extra instances stand by on its lease). The query binary serves the
// integrity API beside the read API.
var (
	IngestorRoles      = []string{Ingestor, Tlog}
	QueryRoles         = []string{Query, WebhooksAPI, SIEMAPI, Ingest, TlogAPI}
	WebhookRoles       = []string{Webhooks}
	SIEMRoles          = []string{SIEM}
	AuditdRoles        = []string{Ingestor, Webhooks, SIEM, Query, WebhooksAPI, SIEMAPI, Tlog, TlogAPI, Ingest, Demo}
	TopologyOwnerRoles = []string{Topology}
)
