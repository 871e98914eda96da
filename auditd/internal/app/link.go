package app

import (
	"net"
	"net/netip"
	"strconv"

	"go.uber.org/zap"
)

// pageBase returns the base URL of the HTTP server listening on addr as a
// browser on this machine opens it. An address of every interface
// (0.0.0.0, ::) is no address to open: the link names 127.0.0.1 instead
// (a "tcp" listener on every interface is dual-stack, and Go reports one
// on 0.0.0.0 as [::]), and a note in the log says the server listens on
// every interface, so other machines use this one's name.
func pageBase(log *zap.Logger, addr net.Addr) string {
	hostPort := addr.String()
	ap, err := netip.ParseAddrPort(hostPort)
	if err != nil || !ap.Addr().IsUnspecified() {
		return "http://" + hostPort
	}
	base := "http://" + netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()).String()
	log.Info("listening on all interfaces ("+hostPort+"): the links are for this machine; from another, "+
		"use this machine's name or address on port "+strconv.Itoa(int(ap.Port())),
		zap.String("listen", hostPort), zap.String("local", base))
	return base
}
