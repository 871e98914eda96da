// Package tlog makes each organization's audit log a verifiable
// transparency log: an RFC 6962 Merkle tree whose leaves are the org's
// events in log_index order, with checkpoints signed as C2SP signed notes
// (tlog-checkpoint format, Ed25519).
//
// It holds what both the server and an offline verifier need, and imports
// neither NATS nor the event store, so a command-line verifier can use it:
//
//   - leaf construction: Commit replaces each personal field of an event by
//     a commitment under its subject's salt, and Leaf returns the RFC 6962
//     leaf hash of the committed event's canonical bytes (received_at
//     included). Erasing a person deletes the salt and the plaintext; every
//     leaf, checkpoint and proof stays valid;
//   - checkpoints: Signer signs (origin, size, root); OpenCheckpoint checks
//     a signed checkpoint against a list of trusted verifier keys, so a key
//     rotation keeps old checkpoints verifiable;
//   - proofs: InclusionProof, ConsistencyProof and RangeEdges compute
//     proofs from stored node hashes (any NodeReader);
//   - verification: VerifyExport recomputes a contiguous range of leaves
//     from an export and checks it against a signed checkpoint, naming the
//     first index that does not match and why.
//
// The format is specified in docs/integrity.md. The tree hasher is
// rfc6962.DefaultHasher from github.com/transparency-dev/merkle; proofs
// are built with its proof and compact packages.
package tlog
