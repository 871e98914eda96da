#!/usr/bin/env bash
# bench-compare.sh BASE [ROUNDS] [EVENTS]: the end-to-end benchmark
# (auditd/e2e BenchmarkEndToEnd) of the working tree next to the same
# benchmark of an older revision, on this machine, alternating the two
# ROUNDS times (default 5) with EVENTS events per run (default 300,000).
# It prints every run, then the median of each side and the cost of the
# working tree against BASE (positive: slower).
#
# Both sides are compiled first, so the runs alternate without a build in
# between; a machine's load drifts, and alternating spreads the drift over
# both sides. The older revision is checked out in a temporary worktree.
set -euo pipefail

base=${1:?usage: bench-compare.sh BASE [ROUNDS] [EVENTS]}
rounds=${2:-5}
events=${3:-300000}
root=$(cd "$(dirname "$0")/.." && pwd)
if ! git -C "$root" cat-file -e "$base^{commit}" 2>/dev/null; then
	echo "bench-compare: revision $base is not in this clone's history (a shallow clone? fetch it, or set BENCH_BASE)" >&2
	exit 1
fi
lib=$("$root/scripts/fetch-chdb.sh")
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add --detach "$work/base" "$base" >/dev/null
(cd "$work/base/auditd" && go test -c -o "$work/base.test" ./e2e/)
(cd "$root/auditd" && go test -c -o "$work/head.test" ./e2e/)

# run SIDE: one run, printing "SIDE events/s cpu_µs/event" (cpu is "-"
# when that side's benchmark does not report it).
run() {
	local line
	line=$(cd "$root/auditd/e2e" && AUDIT_CHDB_LIB="$lib" AUDIT_BENCH_EVENTS="$events" \
		"$work/$1.test" -test.run '^$' -test.bench 'EndToEnd$' -test.benchtime 1x | grep '^BenchmarkEndToEnd')
	echo "$1 $(awk '{for (i = 2; i < NF; i++) if ($(i+1) == "events/s") r = $i; else if ($(i+1) == "cpu_µs/event") c = $i;
		print r, (c == "" ? "-" : c)}' <<<"$line")"
}

results=$work/results
for ((r = 1; r <= rounds; r++)); do
	for side in base head; do
		run "$side" | tee -a "$results"
	done
done

awk -v base="$base" '
	function median(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ n[$1]++; rate[$1, n[$1]] = $2; if ($3 != "-") { m[$1]++; cpu[$1, m[$1]] = $3 } }
	END {
		for (s in n) {
			delete a; for (i = 1; i <= n[s]; i++) a[i] = rate[s, i]; mr[s] = median(a, n[s])
			delete a; for (i = 1; i <= m[s]; i++) a[i] = cpu[s, i]; mc[s] = m[s] ? median(a, m[s]) : 0
		}
		printf "median events/s:     %s %.0f   working tree %.0f   cost %.1f %%\n", base, mr["base"], mr["head"], 100 * (1 - mr["head"] / mr["base"])
		if (mc["base"] && mc["head"])
			printf "median CPU µs/event: %s %.1f   working tree %.1f   cost %.1f %%\n", base, mc["base"], mc["head"], 100 * (mc["head"] / mc["base"] - 1)
	}' "$results"
