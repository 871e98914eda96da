// Package kvcollection is a typed collection of records over one NATS
// JetStream KV bucket, with a local cache that a watch on the bucket keeps
// current. Org settings, webhook endpoints and SIEM destinations are kept
// in such collections.
//
// Reads (Get, List) come from the cache and never touch the network. Every
// instance watching the bucket sees a change made by any other within
// milliseconds; a write made through a Collection is in that Collection's
// cache when the call returns. Writes are guarded by the key's revision:
// Create fails with ErrExists when the key is present, Update re-reads the
// record and retries its change function when another writer got in first,
// Delete retries likewise until the record is gone, CompareAndSet and
// DeleteAt fail with ErrConflict on a stale revision. No writer ever loses
// another's change.
//
// A revision the collection's decoder refuses changes nothing: the key
// keeps its last valid value, recorded at that revision, so Update and
// CompareAndSet write over it. No writer of a collection stores such a
// value, but any client of the bus can make the server store one: the
// server checks no permission on a request's reply subject, and
// JetStream publishes its answer there, a key included.
//
// A Collection is created with one of two constructors: Create makes (or
// updates) the bucket from Config.Bucket, for a process that owns the
// bucket's configuration; Bind attaches to a bucket that must already
// exist, for processes that only use it. Both return once the initial
// values are loaded (the readiness point); Start returns at once and
// Ready reports when loading is done.
//
// A Collection is safe for concurrent use. Close stops the watch; reads
// keep answering from the last cache and writes still work.
package kvcollection
