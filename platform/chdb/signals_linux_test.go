package chdb

import (
	"syscall"
	"testing"
	"unsafe"
)

// handlersAtInit are the signal handlers the Go runtime installed, read
// before TestMain opens the session.
var handlersAtInit = readHandlers()

func readHandlers() (h [32]uintptr) {
	for sig := 1; sig < 32; sig++ {
		var sa kernelSigaction
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&sa)), 8, 0, 0)
		h[sig] = *(*uintptr)(unsafe.Pointer(&sa))
	}
	return h
}

// Left alone, the engine replaces the handlers of SIGILL, SIGTRAP, SIGABRT,
// SIGBUS, SIGFPE, SIGSEGV, SIGTSTP and SIGSYS at its first connection.
func TestSignalHandlersKept(t *testing.T) {
	now := readHandlers()
	for sig := 1; sig < 32; sig++ {
		if now[sig] != handlersAtInit[sig] {
			t.Errorf("signal %d: handler %#x, was %#x before the session opened", sig, now[sig], handlersAtInit[sig])
		}
	}
}
