// Package destination holds what every kind of delivery destination
// (webhook endpoints, SIEM destinations) shares: the common fields of a
// stored destination (Fields: id, organization, action filters, creation
// and update times) with their validation and KV key, and Secret, the
// type that carries a credential in memory without ever printing it.
//
// Each kind keeps its own record type embedding Fields, its own bucket (a
// kvcollection) and its own delivery; the state a destination can be in
// differs by kind (a webhook endpoint is enabled or disabled with a
// reason, a SIEM destination paused by its admin) and stays with the kind.
package destination
