#!/usr/bin/env bash
# Throughput through the balancer of scripts/cluster.sh with 1 and then 2 workers: wrk posting
# make demo's tile query to POST /v1/inspect for 20 s with 4 clients (bounded), each cluster in
# network namespaces of its own (10.78.0.0/24), taken down afterwards. The workers share this
# machine's cores (each gets cores / workers compute threads), so the table shows what the
# balancer and a second process cost or give here, not what a second machine adds.
#
#   bench/cluster_load.sh [BUILD_DIR]
set -euo pipefail
build=$(realpath "${1:-build}")
source_dir=$(cd "$(dirname "$0")/.." && pwd)
export PATCHVEC_CLUSTER=pvbench PATCHVEC_CLUSTER_NET=10.78.0
export PATCHVEC_CLUSTER_DIR="$build/bench-data/cluster" PATCHVEC_BINARY="$build/patchvec"
cluster="$source_dir/scripts/cluster.sh"
demo="$build/demo"
[ -e "$demo/models/tile.pvm" ] || PATCHVEC_OFFLINE=1 "$build/patchvec" demo --out "$demo" >/dev/null
trap '"$cluster" down --purge >/dev/null 2>&1 || true' EXIT
"$cluster" down --purge >/dev/null 2>&1 || true

work="$build/bench-data/cluster-load"
mkdir -p "$work"
image=$(realpath "$demo/queries/tile_good.png")
lua="$source_dir/bench/wrk_post.lua"
export PATCHVEC_WRK_IMAGE="$image"  # posted by bench/wrk_post.lua

rows=()
for workers in 1 2; do
  start=$(date +%s.%N)
  "$cluster" up --workers "$workers" --models "$demo/models" --data "$demo/data" >"$work/up-$workers.txt" 2>&1 ||
    { cat "$work/up-$workers.txt"; exit 1; }
  up_s=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
  url=$("$cluster" url)
  curl -sf -o /dev/null --data-binary "@$image" "$url/v1/inspect?category=tile"  # warm
  echo "== $workers worker(s): 4 clients through the balancer, 20 s"
  line=$(wrk -t2 -c4 -d20s --timeout 30s -s "$lua" "$url/v1/inspect?category=tile" | grep RESULT)
  echo "$line"
  rows+=("workers=$workers up_s=$up_s $line")
  "$cluster" down >/dev/null 2>&1
done

python3 - "${rows[@]}" <<'PY'
import re, sys
bad = False
print(f"{'workers':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'up s':>6}")
summary = []
for row in sys.argv[1:]:
    v = dict(re.findall(r"(\w+)=([\d.]+)", row))
    errors = int(float(v["errors"]) + float(v["non2xx"]))
    bad |= errors > 0
    print(f"{v['workers']:>8} {float(v['rps']):7.2f} {float(v['p50_ms']):8.0f} "
          f"{float(v['p99_ms']):8.0f} {errors:>7} {float(v['up_s']):6.1f}")
    summary.append(f"{v['workers']} worker(s) {float(v['rps']):.1f} req/s")
print("cluster: " + ", ".join(summary) + " through haproxy (4 clients, same machine)")
sys.exit(1 if bad else 0)
PY
