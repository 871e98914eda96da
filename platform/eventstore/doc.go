// Package eventstore stores audit events in ClickHouse and reads them back.
//
// One Store, two engines: the embedded engine (package
// eventstore/embedded, chDB in-process) and a ClickHouse server or cluster
// (package eventstore/server, native protocol). Both run the same DDL and
// the same queries; an Engine only executes statements, binds parameters
// and writes batches.
//
// Guarantees, whatever the engine:
//   - An identical retried batch is stored once (insert_deduplication_token
//     derived from the batch's event ids), and an event stored twice through
//     different batches is returned once by every read (ReplacingMergeTree
//     read with FINAL).
//   - Rows past their retention are never returned, even before the merge
//     that deletes them runs: every read filters on the row's own
//     retention_days and hold_until, as the TTL does.
//   - First write wins: once an org has an event id stored, an identical
//     copy is dropped and a copy with other content is refused (a
//     *RowError wrapping ErrConflictingDuplicate); the stored event is what
//     every read returns. Writers sharing a Store cannot race; the residual
//     window between two Stores is described in docs/storage.md.
//   - A plan change (SetRetention) applies to rows already stored and is
//     complete when it returns. Lengthening applies at once; shortening
//     puts rows on hold for a grace period (Config.RetentionGrace), which
//     only Purge ends early.
//
// The table design and the measurements behind it are in docs/storage.md.
package eventstore
