#!/usr/bin/env bash
# Fetches the embedded ClickHouse engine (libchdb.so) into a cache outside the
# repository, verifies its checksum and prints the library's path. Idempotent:
# a verified library already in the cache is reused without a download.
set -euo pipefail

version="26.7.3-stable.1"
package="@chdb/lib-linux-x64-gnu@${version}"
tarball_sha256="c0d32b129e988f2b9a9a31c9141aecf5e1e2453f9a079efc4d36ab8e3f92b2ad"
cache_root="${AUDIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/takumo-audit}"
dir="${cache_root}/chdb/${version}"
lib="${dir}/libchdb.so"
stamp="${dir}/.verified"

if [ -f "$lib" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$tarball_sha256" ]; then
	echo "$lib"
	exit 0
fi

command -v npm >/dev/null 2>&1 || {
	echo "fetch-chdb: npm is required to download ${package} (apt-get install npm)" >&2
	exit 1
}

mkdir -p "$dir"
work="$(mktemp -d "${dir}/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetch-chdb: downloading ${package} (178 MB) into ${dir}" >&2
(cd "$work" && npm pack --silent "$package" >/dev/null)
tgz="$(ls "$work"/*.tgz)"
got="$(sha256sum "$tgz" | cut -d' ' -f1)"
if [ "$got" != "$tarball_sha256" ]; then
	echo "fetch-chdb: checksum mismatch for ${package}: got ${got}, want ${tarball_sha256}" >&2
	exit 1
fi
tar -xzf "$tgz" -C "$work" package/libchdb.so
mv -f "$work/package/libchdb.so" "$lib"
echo "$tarball_sha256" >"$stamp"
echo "$lib"
