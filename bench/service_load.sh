#!/usr/bin/env bash
# Load on the inspection service over loopback with wrk: requests/s and p99 latency of
# POST /v1/inspect with 2 and 8 concurrent clients, no errors allowed, and the server's memory
# sampled over 2 minutes of load (it must stay flat). Uses make demo's models (runs it if needed).
set -euo pipefail
build=${1:-build}
patchvec=$(realpath "$build/patchvec")
demo="$build/demo"
# Benchmarks download nothing: ImageNet weights only if already cached.
[ -e "$demo/models/tile.pvm" ] || PATCHVEC_OFFLINE=1 "$patchvec" demo --out "$demo" >/dev/null
work="$build/bench-data/service"
mkdir -p "$work"
image=$(realpath "$demo/queries/tile_good.png")

"$patchvec" -q serve --models "$demo/models" --port 0 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
url=""
for _ in $(seq 150); do
  url=$(grep -o 'http://[0-9.:]*/' "$work/serve.log" || true)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { cat "$work/serve.log"; exit 1; }

# wrk posts the image read by this Lua script; the report lists non-2xx responses.
cat >"$work/post.lua" <<LUA
local f = assert(io.open("$image", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d rps=%.2f p50_ms=%.1f p99_ms=%.1f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
target="${url}v1/inspect?category=tile"
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }

for clients in 2 8; do
  echo "== $clients concurrent clients, 30 s"
  wrk -t2 -c"$clients" -d30s --timeout 30s -s "$work/post.lua" "$target" | grep RESULT
done

echo "== memory over 2 minutes of load (8 clients): RSS in MiB every 10 s"
wrk -t2 -c8 -d120s --timeout 30s -s "$work/post.lua" "$target" >"$work/long.txt" &
load=$!
samples=()
for _ in $(seq 12); do
  sleep 10
  samples+=("$(( $(rss) / 1024 ))")
done
wait $load
grep RESULT "$work/long.txt"
echo "RSS ${samples[*]}"
first=${samples[1]}
last=${samples[-1]}
echo "growth from 20 s to 120 s: $(( last - first )) MiB"
