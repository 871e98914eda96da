// Package treestore keeps the transparency logs of platform/tlog in
// ClickHouse, through an eventstore.Engine (embedded chDB or a server): the
// hashes of every complete subtree of each org's tree, stored as runs of
// consecutive nodes of one level (tlog_runs, level 0 holding the leaves
// with their event ids; an event's leaf is found by id through the
// log_index stored with the event, or the key table tlog_leaves_by_event
// for events stored without one), the signed checkpoints
// (tlog_checkpoints) and the per-subject salts of the personal-field
// commitments (tlog_subject_salts). The tables are created by the event
// store's migrations and have no TTL.
//
// A Store is safe for concurrent use. Only the log writer calls the write
// methods (WriteRuns, PutSalts, PutCheckpoint); the read API and the
// erasure operation use the others.
package treestore
