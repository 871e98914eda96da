// Package embedded runs an eventstore.Engine on the embedded ClickHouse
// engine (chDB) through a chdb.Session.
//
// Parameters are bound by the engine (chdb_query_with_params_n); the one
// function that turns a Go value into the engine's parameter text is
// paramText. Batches are written as RowBinary through the engine's
// streaming insert, one stream per batch.
package embedded
