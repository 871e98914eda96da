// Package endpoints is the registry of webhook endpoints: per organization,
// a URL, action filters, a description, whether it is enabled (and why
// not), and its signing secrets, stored in the NATS KV bucket
// AUDIT_WEBHOOK_ENDPOINTS under the key "<org_id>.<endpoint_id>".
//
// The stages: endpoint.go declares an endpoint (the fields common to
// every destination, platform/destination.Fields, and the webhook's own)
// and validates it; registry.go opens the bucket (creating it, or binding
// to it when Config.Bind says another process owns it) and answers reads;
// writes.go changes endpoints; secrets.go seals and opens signing secrets.
//
// Secrets are sealed with platform/secretbox (bound to the endpoint's key)
// before they are stored, and opened only in memory, where they are held
// as destination.Secret. During a rotation the previous secrets stay in
// force, and all sign, until their expiry; a rotation never lets an older
// secret sign longer than its overlap, so an overlap of 0 revokes every
// older secret at once.
//
// Every instance keeps a cache of the whole bucket current through a watch
// (platform/kvcollection), so a change made by any instance is seen by all
// within milliseconds. Reads come from the cache; writes use
// compare-and-set on the key's revision, so concurrent writers never lose
// each other's changes.
package endpoints
