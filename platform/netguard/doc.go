// Package netguard keeps outbound deliveries (webhook requests, SIEM
// streams) away from the network of the host that sends them. A Guard
// refuses URLs that are not HTTPS (unless plain HTTP is allowed for
// development) and refuses to connect to loopback, private, link-local,
// carrier-grade NAT, multicast, reserved and cloud metadata addresses.
//
// Each kind of destination has its policy: Webhooks (allow-list
// AUDIT_WEBHOOK_ALLOW_CIDRS) and SIEM (allow-list AUDIT_SIEM_ALLOW_CIDRS).
// Both refuse internal ranges unless allow-listed, which is the only safe
// default on a host serving many organizations.
//
// The address check runs when connecting, on the address actually dialled
// after name resolution (in the dialer's Control hook), so a name that
// resolved to a public address when the destination was registered and to
// an internal one later (DNS rebinding) is still refused. An allow-list of
// CIDRs lifts the refusal for chosen ranges (tests allow 127.0.0.1/32).
//
// Errors shown to an organization must not reveal the operator's network:
// the guarded dial functions return *DialError, which names the address
// as configured and a short reason, never the address a name resolved
// to; Reason and Sanitize turn any delivery error into such a text.
//
// A Guard is immutable after New and safe for concurrent use.
package netguard
