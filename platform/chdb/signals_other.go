//go:build !linux

package chdb

// saveSignals is a no-op where the engine is not supported.
func saveSignals() (restore func()) { return func() {} }
