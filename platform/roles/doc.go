// Package roles is the one table of the roles a Takumo Audit process can
// run, what each depends on, and the configuration and construction of
// the roles every process shares (ops HTTP, NATS bus, event store,
// topology, org settings, the audit recorder).
//
// The module graph shapes it: platform cannot import the service modules,
// so the table of role names and dependencies (Deps) lives here, each
// service module provides its role's constructor next to the role
// (ingestor/role, query/role, webhook-dispatcher/role,
// siem-forwarder/role), and each main passes the constructors it links to
// Process.Run, which orders them by the table and runs them as
// platform/lifecycle stages. auditd links every constructor; each
// standalone binary links its own.
//
// Each role's configuration is one struct with envconfig tags, declared
// once next to the role and embedded by every binary that runs it, so a
// knob has the same variable and default in every deployment. Tags carry
// the full AUDIT_ name and Load reads them with no prefix, so no binary
// ever falls back to an unprefixed variable (NATS_URL, HTTP_ADDR, ...).
//
// Topology has one owner. A process created with Owner set (auditd, or
// `auditd topology` in separate deployments) creates and updates streams,
// consumers and key-value buckets; every other process only waits for
// them and reports drift (topology.Verifier) without changing anything.
// Require is the single place roles declare what they need. Non-owners
// open buckets through topology.Bind (Process.Buckets); this is the one
// mechanism that keeps a role from creating what it only uses, and the
// NATS permissions (package natsauth) enforce it on the server.
//
// Every role connects with its own NATS identity (Identities,
// Process.Identity): the topology owner as admin, the ingestor, webhook
// delivery and SIEM forwarding as themselves, the APIs, org settings and
// the audit recorder as api beside the query role, the HTTP ingest role's
// events and the demo as producer (its service keys as api), the log
// writer as tlog. Process.Conn, JetStream and Buckets are the only ways a
// role reaches the bus. A standalone binary holds one identity
// (AUDIT_NATS_CREDS, a seed file), except the ingestor, which runs the
// log writer as tlog beside it and takes a directory of the two seeds;
// auditd holds all of them (its embedded server's, or a directory of
// seeds). A process given one seed file runs every role as that identity,
// but refuses to start the log writer as anything but tlog. Objects only
// one role's identity may read (the log writer's consumer and lease
// bucket) are verified through that role's connection (RequireAs). In the
// owner a role's bucket is created as admin and opened on
// the role's own connection.
//
// Shutdown follows one rule everywhere: the whole orderly stop gets
// AUDIT_SHUTDOWN_TIMEOUT; a delivery role may spend at most half of it
// (Process.StageBudget) on its last attempt, so the rest of the stop
// sequence keeps the other half.
package roles
