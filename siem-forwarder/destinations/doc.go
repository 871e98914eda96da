// Package destinations stores SIEM destinations and their delivery status
// in NATS KV buckets, seals their credentials with secretbox, and owns each
// destination's durable JetStream consumer.
//
// The stages: destination.go declares a destination (the fields common to
// every destination, platform/destination.Fields, and the SIEM's own) and
// validates it; store.go opens the buckets (creating them, or binding to
// them when Config.Bind says another process owns them) and reads and
// writes destinations; secrets.go seals and opens credentials;
// consumers.go manages each destination's consumer (creation, replay,
// lag); status.go records delivery status.
//
// Destinations are kept in a platform/kvcollection: every instance reads
// them from a cache a watch keeps current, and writes are compare-and-set
// on the key's revision, so concurrent changes are never lost (an update
// from a stale read fails with ErrConflict).
//
// A destination's consumer, on the AUDIT_FANOUT stream, is created with the
// destination, not when a forwarder first runs it, so delivery starts from
// the moment the destination exists. The fan-out stream is a bounded copy
// of the events: a destination that is failing or paused keeps its place
// in it, and once its backlog is older than the stream keeps, the oldest
// events are skipped — its lag shows it. Deleting the destination deletes
// its consumer.
//
// Keys are "<org_id>.<destination_id>" in both buckets.
package destinations
