//go:build linux || darwin || freebsd || netbsd || openbsd

package syslognet

import "syscall"

// peerOpen peeks at the socket without blocking: end of stream or a reset
// means the receiver is gone (open false); otherwise pending reports
// whether bytes wait to be read (a TLS session ticket or alert, say).
func peerOpen(rc syscall.RawConn) (open, pending bool) {
	open = true
	var buf [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		case err != nil, n == 0:
			open = false
		default:
			pending = true
		}
		return true
	})
	return open, pending
}
