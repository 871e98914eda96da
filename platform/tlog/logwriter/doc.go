// Package logwriter appends each org's events to its transparency log
// (platform/tlog) and signs checkpoints.
//
// The Writer is the log's sequencer and the ingestor is its only client:
// it consumes nothing itself. One Writer is active per deployment: it
// holds a lease (a key created and renewed with compare-and-set in a NATS
// KV bucket, living for the bucket's TTL) and stops writing the moment it
// cannot prove it still holds it; a second instance waits as a standby.
// The lease bucket belongs to the declared topology (platform/topology,
// created by the topology owner); the Writer only binds to it, so its NATS
// identity (natsauth.Tlog) needs no right to create anything.
//
// While it holds the lease (Serve), the ingestor of the same process,
// which consumes only then, hands it each batch's first writes between its
// store's look-up and insert (Seal): each event gets its org's next
// log_index, in the order given (stream order within a batch). For a
// batch the Writer stores the new subject salts, then every new leaf and
// completed subtree hash in one INSERT, and returns the indices, which the
// ingestor stores with the events before acknowledging their messages
// (Stored). On start it rebuilds each org's state from the store and reads
// back the leaves logged for messages after the ingestor's acknowledgement
// floor, so an event whose leaf is stored keeps its index when its message
// comes again: a crash at any point leaves no gap, no repeated index and
// no fork.
//
// Every CheckpointInterval, and on demand (Checkpoint), it signs a
// checkpoint for each org whose tree grew, after checking that the tree in
// the store rebuilds the root it is about to sign.
package logwriter
