// Package auditapi is the client contract of the Takumo Audit HTTP APIs
// (the query service, the webhook and SIEM management APIs): the problem
// details every error answer carries, with its stable codes and titles;
// the permission names; the bearer token's claims; and Mint, which signs
// development tokens with one set of checks.
//
// It depends on the standard library and golang-jwt only, so that clients
// (auditctl, tests, host applications) can import it without the servers'
// dependencies (NATS, the event store, ClickHouse, zap). The servers
// import it for the same codes and permissions.
package auditapi
