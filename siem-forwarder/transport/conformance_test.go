package transport_test

import (
	"net"
	"testing"

	"github.com/takumo/audit/siem-forwarder/transport/httpsend"
	"github.com/takumo/audit/siem-forwarder/transport/syslognet"
	"github.com/takumo/audit/siem-forwarder/transport/transporttest"
)

// Every transport configuration passes the conformance suite.
func TestConformance(t *testing.T) {
	syslog := func(network string, framing syslognet.Framing) func(*testing.T, transporttest.Target) (transporttest.Sender, error) {
		return func(_ *testing.T, tg transporttest.Target) (transporttest.Sender, error) {
			cfg := syslognet.Config{Network: network, Address: tg.Address, Framing: framing}
			if network == "tls" {
				cfg.TLS = tg.TLS
			}
			return syslognet.New(cfg)
		}
	}
	configs := []struct {
		name string
		cfg  transporttest.Config
	}{
		{"tcp-octet-counting", transporttest.Config{Protocol: transporttest.OctetCounting, New: syslog("tcp", syslognet.OctetCounting)}},
		{"tcp-lf", transporttest.Config{Protocol: transporttest.LF, New: syslog("tcp", syslognet.LF)}},
		{"tls-octet-counting", transporttest.Config{Protocol: transporttest.OctetCounting, TLS: true, New: syslog("tls", syslognet.OctetCounting)}},
		{"tls-lf", transporttest.Config{Protocol: transporttest.LF, TLS: true, New: syslog("tls", syslognet.LF)}},
		{"udp", transporttest.Config{Protocol: transporttest.Datagram, New: syslog("udp", ""), MaxRecord: syslognet.MaxDatagram}},
		{"hec", transporttest.Config{Protocol: transporttest.HEC, Op: "httpsend",
			New: func(_ *testing.T, tg transporttest.Target) (transporttest.Sender, error) {
				return httpsend.New(httpsend.Config{URL: tg.URL, HEC: true, Token: transporttest.HECToken, TLS: tg.TLS})
			}}},
		{"https-ndjson", transporttest.Config{Protocol: transporttest.NDJSON, Op: "httpsend",
			New: func(_ *testing.T, tg transporttest.Target) (transporttest.Sender, error) {
				return httpsend.New(httpsend.Config{URL: tg.URL, AuthHeader: transporttest.AuthHeader, AuthValue: transporttest.AuthValue, TLS: tg.TLS})
			}}},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			if c.cfg.Op == "" {
				c.cfg.Op, c.cfg.ClosedErr = "syslognet", net.ErrClosed
			}
			transporttest.Run(t, c.cfg)
		})
	}
}
