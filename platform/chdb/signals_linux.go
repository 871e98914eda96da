package chdb

import (
	"syscall"
	"unsafe"
)

// kernelSigaction is large enough for the kernel's struct sigaction on every
// Linux architecture (32 bytes on amd64 and arm64). It is only copied out
// and back, never interpreted.
type kernelSigaction [64]byte

// saveSignals records the disposition of every catchable signal and returns
// a function that puts them back. It guards calls into the engine that
// install or reset signal handlers, so the Go runtime keeps its own.
func saveSignals() (restore func()) {
	const nsig = 65
	var saved [nsig]kernelSigaction
	var ok [nsig]bool
	for sig := 1; sig < nsig; sig++ {
		if sig == int(syscall.SIGKILL) || sig == int(syscall.SIGSTOP) {
			continue
		}
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&saved[sig])), 8, 0, 0)
		ok[sig] = errno == 0
	}
	return func() {
		for sig := 1; sig < nsig; sig++ {
			if ok[sig] {
				syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&saved[sig])), 0, 8, 0, 0)
			}
		}
	}
}
