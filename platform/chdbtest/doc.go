// Package chdbtest gives a package's tests the embedded ClickHouse engine
// (chDB): one session per test process, opened by Main, and a fresh
// database per test.
//
// The engine allows one session per process, so a test package calls Main
// from its TestMain and every test draws on the same session:
//
//	func TestMain(m *testing.M) { chdbtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		store := chdbtest.Store(t) // migrated, on a database of its own
//		...
//	}
//
// A missing engine library fails the whole test process (it never skips):
// the message names `make chdb` and AUDIT_CHDB_LIB.
package chdbtest
