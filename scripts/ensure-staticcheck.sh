#!/usr/bin/env bash
# Prints the path of staticcheck, installing the pinned version from the Go
# module proxy into the cache outside the repository the first time
# (idempotent: later runs only print the path).
set -euo pipefail

version=v0.8.2
cache="${AUDIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/takumo-audit}/tools/staticcheck-$version"
bin="$cache/staticcheck"
if [ ! -x "$bin" ]; then
	mkdir -p "$cache"
	echo "ensure-staticcheck: installing honnef.co/go/tools/cmd/staticcheck@$version (once)" >&2
	(cd "$cache" && GOWORK=off GOFLAGS=-mod=mod GOBIN="$cache" go install "honnef.co/go/tools/cmd/staticcheck@$version")
fi
echo "$bin"
