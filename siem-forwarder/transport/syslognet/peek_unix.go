//go:build linux || darwin || freebsd || netbsd || openbsd

package syslognet

import "syscall"

// peerOpen peeks at the socket without blocking: end of stream or a reset
// means the receiver is gone; pending bytes (a TLS session ticket, say) or
// nothing to read mean it is still there.
func peerOpen(rc syscall.RawConn) bool {
	open := true
	var buf [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		case err != nil, n == 0:
			open = false
		}
		return true
	})
	return open
}
