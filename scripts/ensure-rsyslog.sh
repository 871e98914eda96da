#!/usr/bin/env bash
# Makes sure Debian's rsyslog is installed, for the SIEM forwarder's test
# against a real syslog daemon. Idempotent and quick: when /usr/sbin/rsyslogd
# exists it does nothing. Installing needs root and a reachable apt mirror;
# without either it prints why and exits 0, and the rsyslog test fails
# naming this script (AUDIT_SKIP_RSYSLOG=1 skips it instead).
set -euo pipefail

if [ -x /usr/sbin/rsyslogd ]; then
	exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-rsyslog: rsyslogd missing and cannot install (needs root and apt-get); the rsyslog test will fail" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends rsyslog >/dev/null 2>&1; then
	apt-get update -qq >/dev/null 2>&1 || true
	apt-get install -y --no-install-recommends rsyslog >/dev/null 2>&1 || {
		echo "ensure-rsyslog: apt-get install rsyslog failed; the rsyslog test will fail" >&2
		exit 0
	}
fi
