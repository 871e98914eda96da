// Package chdb is a minimal binding to the embedded ClickHouse engine
// (libchdb.so, chDB) through purego, without cgo.
//
// The library is loaded lazily by Open, never at package initialisation, so
// a program that imports this package but talks to a ClickHouse server never
// needs the library. A missing library is reported as an error wrapping
// ErrLibraryMissing that names the path and the command that fetches it.
//
// The engine allows one session per process: Open fails with ErrSessionOpen
// while another Session is open, and a second process on the same data
// directory fails on the engine's lock. Statements on a Session are
// serialized; a caller that needs isolation between users of one session
// separates them by database name.
package chdb
