#!/usr/bin/env bash
# Load on the inspection service over loopback with wrk: requests/s and p50/p99 latency of
# POST /v1/inspect with 1, 2, 4 and 8 concurrent clients (20 s each, no errors allowed), the
# server's resident memory once its models are loaded, and its memory over 2 minutes of load with
# 8 clients (it must stay flat). The models: make demo's three categories trained again on one
# weights file (seeded random weights exported as a "pretrained" backbone: no download), so that
# they can share one backbone.
#
#   bench/service_load.sh [BUILD_DIR] [BEFORE_BINARY]
#
# With BEFORE_BINARY (an older build of patchvec), the same table for it first, in the same run:
# the summary compares the two. Fails when throughput falls as clients are added (8 clients below
# the best of 1-2), or on any error.
set -euo pipefail
build=${1:-build}
before=${2:-}
python=/usr/bin/python3
patchvec=$(realpath "$build/patchvec")
demo="$build/demo"
# Benchmarks download nothing: ImageNet weights only if already cached.
[ -e "$demo/models/tile.pvm" ] || PATCHVEC_OFFLINE=1 "$patchvec" demo --out "$demo" >/dev/null
work="$build/bench-data/service"
mkdir -p "$work"
weights="$build/bench-data/patchcore/weights.safetensors"
[ -f "$weights" ] || $python scripts/export-weights.py wide_resnet50_2 "$weights" --random-seed 0
models="$work/models"
if [ ! -f "$models/grid.pvm" ]; then
  "$patchvec" -q train --data "$demo/data" --category tile,leather,grid --weights "$weights" \
    --out "$models" >/dev/null
  "$patchvec" -q index --model "$models/tile.pvm" "$models/leather.pvm" "$models/grid.pvm" \
    --data "$demo/data" >/dev/null
fi
image=$(realpath "$demo/queries/tile_good.png")

lua="$(cd "$(dirname "$0")" && pwd)/wrk_post.lua"
export PATCHVEC_WRK_IMAGE="$image"  # posted by bench/wrk_post.lua

source "$(dirname "$0")/serving.sh"
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }

measure() {  # NAME BINARY: one line per client count in $work/NAME.txt
  local name=$1 binary=$2
  start_server "$binary" "$models" "$work/$name-serve.log"
  sleep 2
  echo "rss_kib=$(rss)" >"$work/$name.txt"
  for clients in 1 2 4 8; do
    # The previous run's last requests finish first: their connections count per client.
    sleep 5
    echo "== $name: $clients concurrent clients, 20 s"
    line=$(wrk -t"$((clients < 2 ? 1 : 2))" -c"$clients" -d20s --timeout 30s -s "$lua" \
      "${url}v1/inspect?category=tile" | grep RESULT)
    echo "$line"
    echo "clients=$clients $line" >>"$work/$name.txt"
  done
  stop_server
}

[ -n "$before" ] && measure before "$(realpath "$before")"
measure after "$patchvec"

echo "== memory over 2 minutes of load (8 clients): RSS in MiB every 10 s"
start_server "$patchvec" "$models" "$work/long-serve.log"
sleep 2
wrk -t2 -c8 -d120s --timeout 30s -s "$lua" "${url}v1/inspect?category=tile" \
  >"$work/long.txt" &
load=$!
samples=()
for _ in $(seq 12); do
  sleep 10
  samples+=("$(($(rss) / 1024))")
done
wait $load
curl -s "${url}metrics" | grep -E '^patchvec_(forward_passes|predicted_images)_total' \
  >"$work/batches.txt" || true
stop_server
grep RESULT "$work/long.txt"
echo "RSS ${samples[*]}"
echo "growth from 20 s to 120 s: $((samples[-1] - samples[1])) MiB"

$python - "$work" "${before:+before}" "${samples[1]}" "${samples[-1]}" "$(nproc)" <<'PY'
import re, sys
work, has_before, rss20, rss120, cores = sys.argv[1:]
def table(name):
    rows, rss = {}, None
    for line in open(f"{work}/{name}.txt"):
        if line.startswith("rss_kib="):
            rss = int(line.split("=")[1]) / 1024
            continue
        v = dict(re.findall(r"(\w+)=([\d.]+)", line))
        rows[int(v["clients"])] = {k: float(x) for k, x in v.items()}
    return rows, rss
names = (["before"] if has_before else []) + ["after"]
tables = {n: table(n) for n in names}
bad = False
for n in names:
    rows, rss = tables[n]
    print(f"{n}: idle RSS {rss:.0f} MiB with 3 categories")
    print(f"{'clients':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for c, r in sorted(rows.items()):
        errors = int(r["errors"] + r["non2xx"])
        print(f"{c:>8} {r['rps']:7.2f} {r['p50_ms']:8.0f} {r['p99_ms']:8.0f} {errors:>7}")
        bad |= errors > 0
rows, rss = tables["after"]
best_low = max(rows[1]["rps"], rows[2]["rps"])
falls = rows[8]["rps"] < best_low
batches = dict(re.findall(r"(\w+) (\d+)", open(f"{work}/batches.txt").read()))
per_pass = (int(batches.get("patchvec_predicted_images_total", 0)) /
            max(int(batches.get("patchvec_forward_passes_total", 1)), 1))
summary = ("service: req/s at 1/2/4/8 clients " + "/".join(f"{rows[c]['rps']:.1f}" for c in (1, 2, 4, 8)) +
           f", p99 at 4 clients {rows[4]['p99_ms']:.0f} ms, idle RSS {rss:.0f} MiB, "
           f"{per_pass:.1f} images per forward pass at 8 clients, RSS {rss20}->{rss120} MiB over 2 min")
if has_before:
    b, brss = tables["before"]
    summary += (f" | before: " + "/".join(f"{b[c]['rps']:.1f}" for c in (1, 2, 4, 8)) +
                f", p99 at 4 clients {b[4]['p99_ms']:.0f} ms, idle RSS {brss:.0f} MiB"
                f" | after/before at 2 clients {rows[2]['rps'] / b[2]['rps']:.2f}x, "
                f"at 8 {rows[8]['rps'] / b[8]['rps']:.2f}x")
print(summary + f" ({cores} cores)")
if falls:
    print("FAIL: 8 clients are slower than the best of 1-2")
sys.exit(1 if bad or falls else 0)
PY
