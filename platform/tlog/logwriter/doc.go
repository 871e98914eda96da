// Package logwriter appends each org's events to its transparency log
// (platform/tlog) and signs checkpoints.
//
// One Writer is active per deployment: it holds a lease (a key created and
// renewed with compare-and-set in a NATS KV bucket, living for the
// bucket's TTL) and stops writing the moment it cannot prove it still
// holds it; a second instance waits as a standby. Its durable consumer and
// the lease bucket belong to the declared topology (platform/topology,
// created by the topology owner); the Writer only binds to them, so its
// NATS identity (natsauth.Tlog) needs no right to create anything. The active writer reads AUDIT_EVENTS through its own durable
// consumer and processes messages strictly in stream order, whatever order
// they are delivered in (redeliveries after a crash arrive late): each
// event not yet logged for its org gets the org's next log_index. For a
// batch it stores the new subject salts, then every new leaf and completed
// subtree hash in one INSERT, and only then acknowledges the messages. On
// start it rebuilds each org's state from the store; a redelivered message
// whose event is already logged is acknowledged and skipped, so a crash at
// any point leaves no gap, no repeated index and no fork.
//
// That is the stand-alone mode (Run), kept for its tests. The deployed
// roles run the sealing mode instead (Serve, Seal, Stored; seal.go): the
// Writer consumes nothing; the ingestor of the same process, which runs
// only while the Writer holds the lease, hands it each batch's first
// writes between its store's look-up and insert, gets their indices and
// stores them with the events. Leaves logged for messages after the
// ingestor's acknowledgement floor are read back on start, so an event
// whose leaf is stored keeps its index when its message comes again.
//
// Every CheckpointInterval, and on demand (Checkpoint), it signs a
// checkpoint for each org whose tree grew, after checking that the tree in
// the store rebuilds the root it is about to sign.
package logwriter
