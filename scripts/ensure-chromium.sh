#!/usr/bin/env bash
# Makes sure Debian's chromium is installed, for the log page's test in a
# real browser (query/page_browser_test.go). Idempotent and quick: when
# /usr/bin/chromium exists it does nothing. Installing needs root and a
# reachable apt mirror; without either it prints why and exits 0, and the
# browser test fails with a message naming this script (set
# AUDIT_SKIP_BROWSER=1 to skip it instead).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-chromium: /usr/bin/chromium missing and cannot install (needs root and apt-get)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "ensure-chromium: installing Debian's chromium (once)" >&2
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null || {
	echo "ensure-chromium: apt-get install chromium failed" >&2
	exit 0
}
