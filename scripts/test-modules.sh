#!/usr/bin/env bash
# Runs the tests of the modules given (go test -count=1 -timeout 10m ./...
# in each), AUDIT_TEST_JOBS modules at a time (default 2), in the order
# given: put the longest first. The suite's tests spend most of their time
# waiting on real servers (NATS, the embedded engine, HTTP, syslog, a
# browser), so modules side by side finish sooner without starving each
# other. Each module's output is printed whole when it ends, with its
# duration; the exit status is 1 when any module failed, after all ended.
# AUDIT_TEST_JOBS=1 runs one module at a time, streaming its output.
set -uo pipefail

jobs="${AUDIT_TEST_JOBS:-2}"
if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
	echo "test-modules: AUDIT_TEST_JOBS must be a positive integer, got '$jobs'" >&2
	exit 2
fi
go_="${GO:-go}"
# Side by side needs bash 5.1 (wait -n -p); an older bash runs one at a time.
if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
	jobs=1
fi

run() { (cd "$1" && "$go_" test -count=1 -timeout 10m ./...); }

if [ "$jobs" = 1 ]; then
	for m in "$@"; do
		echo "== go test $m"
		run "$m" || exit 1
	done
	exit 0
fi

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
# Interrupted: the modules still running are stopped too.
trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM
declare -A pid_of=() start_of=()
failed=()

# finish reports the module whose process ended (wait -n's status $2).
finish() {
	local m="$1" status="$2"
	echo "== go test $m ($(($(date +%s) - start_of[$m])) s)"
	cat "$logs/$m.log"
	if [ "$status" != 0 ]; then
		failed+=("$m")
	fi
}

# reap waits for one module to end and reports it.
reap() {
	local done_pid status m
	wait -n -p done_pid "${pid_of[@]}"
	status=$?
	for m in "${!pid_of[@]}"; do
		if [ "${pid_of[$m]}" = "$done_pid" ]; then
			unset "pid_of[$m]"
			finish "$m" "$status"
			return
		fi
	done
}

for m in "$@"; do
	while [ "${#pid_of[@]}" -ge "$jobs" ]; do
		reap
	done
	start_of[$m]=$(date +%s)
	run "$m" >"$logs/$m.log" 2>&1 &
	pid_of[$m]=$!
done
while [ "${#pid_of[@]}" -gt 0 ]; do
	reap
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "FAIL: go test in ${failed[*]}" >&2
	exit 1
fi
