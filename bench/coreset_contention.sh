#!/usr/bin/env bash
# Coreset selection on a shared machine: fast and exact selection on the same real embeddings
# (bench/large_fit.sh's 200-image subset, made by it if missing), first on a quiet machine, then
# with one busy process per core competing for the cores. One summary line: how much slower each
# method gets. (A barrier per centre made the old selection swing from 0.3 s to 35 s.)
#
#   bench/coreset_contention.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
embeddings="$build/bench-data/memory/subset.npy"
[ -f "$embeddings" ] || bench/large_fit.sh "$build" >/dev/null
run() {
  "$build/bench/coreset_bench" "$embeddings" --method both | grep -E '^(fast|exact) '
}
quiet=$(run)
busy=()
trap 'kill "${busy[@]}" 2>/dev/null || true' EXIT
for _ in $(seq "$(nproc)"); do
  timeout 600 sh -c 'while :; do :; done' &
  busy+=($!)
done
loaded=$(run)
kill "${busy[@]}" 2>/dev/null || true
echo "quiet:"
echo "$quiet"
echo "with $(nproc) busy processes:"
echo "$loaded"
seconds() { echo "$1" | awk -v m="$2" '$1 == m {print $3}'; }
qf=$(seconds "$quiet" fast)
qe=$(seconds "$quiet" exact)
lf=$(seconds "$loaded" fast)
le=$(seconds "$loaded" exact)
awk -v qf="$qf" -v qe="$qe" -v lf="$lf" -v le="$le" -v n="$(nproc)" 'BEGIN {
  printf "coreset under load: fast %.1f -> %.1f s (%.1fx), exact %.1f -> %.1f s (%.1fx) with %d busy processes on %d cores\n",
    qf, lf, lf / qf, qe, le, le / qe, n, n }'
