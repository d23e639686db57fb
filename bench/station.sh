#!/usr/bin/env bash
# The station on the line, measured: capture-to-MQTT latency p50/p95 at 1 and 5 images/s, the
# highest sustained images/s of one lane (a burst of 100 images), a GigE Vision camera's frame to
# MQTT at 2 triggers/s (Aravis's simulated camera, 512x512 BayerRG8, in a network namespace: needs
# root), the cost of the journal (the outbox) per image, and the resident memory of a 3-lane station over STATION_BENCH_SECONDS
# (default 600) at 1 image/s per lane, which must stay flat. wide_resnet50_2 (seeded random
# weights exported as a "pretrained" backbone: no download), 256 px synthetic images, Debian's
# mosquitto on 127.0.0.1 and its mosquitto_sub timestamping each message as it arrives.
#
#   bench/station.sh [BUILD_DIR]
#
# Capture is the moment the image file is complete (its modification time); arrival is the
# subscriber's clock. Fails on a lost result or memory that grows by more than 10 %.
set -euo pipefail
build=${1:-build}
seconds=${STATION_BENCH_SECONDS:-600}
python=/usr/bin/python3
patchvec=$(realpath "$build/patchvec")
work=$(realpath -m "$build/bench-data/station")
rm -rf "$work/run" && mkdir -p "$work/run"
weights="$build/bench-data/patchcore/weights.safetensors"
mkdir -p "$(dirname "$weights")"
[ -f "$weights" ] || $python scripts/export-weights.py wide_resnet50_2 "$weights" --random-seed 0
if [ ! -f "$work/models/grid.pvm" ]; then
  "$patchvec" -q synth --out "$work/data" --train 40 --test-good 10 --test-bad 4 >/dev/null
  "$patchvec" -q train --data "$work/data" --category tile,leather,grid --weights "$weights" \
    --out "$work/models" >/dev/null
fi

port=$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
mosquitto -p "$port" >"$work/run/mosquitto.log" 2>&1 &
pids+=($!)
sleep 0.5
mosquitto_sub -p "$port" -t 'bench/#' -q 1 -F '@s.@N %p' >"$work/run/received.txt" &
pids+=($!)
sleep 0.3

# Drops images into a folder at a rate, as a camera's software would (.part, then renamed in):
#   drop FOLDER PREFIX COUNT RATE CATEGORY [LANES...]
drop() {
  $python - "$@" <<'EOF'
import glob, os, shutil, sys, time
folder, prefix, count, rate, category = sys.argv[1:6]
images = sorted(glob.glob(os.path.join(os.environ["BENCH_DATA"], category, "test", "*", "*.png")))
count, rate = int(count), float(rate)
start = time.monotonic()
for n in range(count):
    if rate > 0:
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    name = f"{prefix}-{n:05d}.png"
    shutil.copyfile(images[n % len(images)], os.path.join(folder, name + ".part"))
    os.rename(os.path.join(folder, name + ".part"), os.path.join(folder, name))
EOF
}
export BENCH_DATA="$work/data"

recorded() { cat "$1"/journal-*.jsonl 2>/dev/null | wc -l; }  # a lane's records
wait_recorded() {  # JOURNAL COUNT
  for _ in $(seq 3000); do
    [ "$(recorded "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "station bench: only $(recorded "$1") of $2 results recorded" >&2
  exit 1
}

# --- one lane: latency at 1 and 5 images/s, then a burst --------------------------------------
mkdir -p "$work/run/in"
"$patchvec" station --model "$work/models/tile.pvm" --folder "$work/run/in" \
  --mqtt "mqtt://127.0.0.1:$port/bench/tile" --state "$work/run/state" --name bench --port 0 \
  --threads 2 >"$work/run/station.log" 2>&1 &
station=$!
pids+=($station)
journal="$work/run/state/lanes/main"
drop "$work/run/in" warm 3 0 tile
wait_recorded "$journal" 3
drop "$work/run/in" r1 30 1 tile
wait_recorded "$journal" 33
drop "$work/run/in" r5 60 5 tile
wait_recorded "$journal" 93
drop "$work/run/in" burst 100 0 tile
wait_recorded "$journal" 193
sleep 1
kill -TERM $station
wait $station || true

# --- a camera: software triggers at 2/s, frame (as the host received it) to MQTT ----------------
net=pvbench$$
ip netns add $net
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true; ip netns del '$net' 2>/dev/null || true' EXIT
ip link add ${net}h type veth peer name ${net}c netns $net
ip addr add 10.214.0.1/24 dev ${net}h && ip link set ${net}h up
ip -n $net addr add 10.214.0.2/24 dev ${net}c && ip -n $net link set ${net}c up
ip netns exec $net arv-fake-gv-camera-0.8 -i 10.214.0.2 -s BENCH >"$work/run/camera.log" 2>&1 &
pids+=($!)
camera_port=$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$patchvec" station --model "$work/models/tile.pvm" --camera 10.214.0.2 --trigger software \
  --pixel-format BayerRG8 --mqtt "mqtt://127.0.0.1:$port/bench/camera" \
  --state "$work/run/camera-state" --name bench --port "$camera_port" --threads 2 \
  >"$work/run/camera-station.log" 2>&1 &
station=$!
pids+=($station)
camera_journal="$work/run/camera-state/lanes/main"
trigger() { curl -s -o /dev/null -H 'Content-Type: application/json' -d '{}' \
  "http://127.0.0.1:$camera_port/v1/station/lanes/main/trigger"; }
for _ in $(seq 300); do  # connected (at most 30 s)
  curl -s "http://127.0.0.1:$camera_port/v1/station" | grep -q '"source_connected":true' && break
  sleep 0.1
done
trigger && wait_recorded "$camera_journal" 1  # warm
for _ in $(seq 30); do trigger; sleep 0.5; done
wait_recorded "$camera_journal" 31
kill -TERM $station
wait $station || true

# The cost of the outbox: what one record's append takes (write + fdatasync), on this disk.
outbox_us=$($python - "$work/run/state" <<'EOF'
import os, sys, time
path = os.path.join(sys.argv[1], "outbox-cost.jsonl")
line = (b'{"seq":1,"key":"0123456789abcdef0123456789abcdef","station":"bench","lane":"main",'
        b'"category":"tile","name":"r1-00001.png","verdict":"normal","score":4.2,"threshold":8.1,'
        b'"normalized":0.26,"reason":"score below threshold","report_id":null,'
        b'"captured":"2026-12-06T08:30:00.000Z","recorded":"2026-12-06T08:30:00.100Z",'
        b'"latency_ms":100.0,"inspect_ms":90.0,"file":"/srv/in/done/r1-00001.png"}\n')
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
start = time.perf_counter()
for _ in range(500):
    os.write(fd, line)
    os.fdatasync(fd)
took = time.perf_counter() - start
os.close(fd)
os.unlink(path)
print(f"{took / 500 * 1e6:.0f}")
EOF
)

report=$($python - "$journal,$camera_journal" "$work/run/received.txt" <<'EOF'
import datetime, json, statistics, sys
import glob
records = [json.loads(line) for lane in sys.argv[1].split(",")
           for path in sorted(glob.glob(lane + "/journal-*.jsonl")) for line in open(path)]
arrived = {}
for line in open(sys.argv[2]):
    stamp, _, payload = line.partition(" ")
    try:
        message = json.loads(payload)
    except ValueError:
        continue
    if "key" in message:
        arrived.setdefault(message["key"], float(stamp))  # the first delivery
missing = [r["name"] for r in records if r["key"] not in arrived]
if missing:
    sys.exit(f"station bench: {len(missing)} results never arrived, e.g. {missing[:3]}")
def captured(r):
    return datetime.datetime.strptime(r["captured"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
def recorded(r):
    return datetime.datetime.strptime(r["recorded"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
def latencies(prefix):
    ms = sorted((arrived[r["key"]] - captured(r)) * 1000 for r in records if r["name"].startswith(prefix))
    q = statistics.quantiles(ms, n=20)
    return statistics.median(ms), q[18]
p50_1, p95_1 = latencies("r1-")
p50_5, p95_5 = latencies("r5-")
camera = [r for r in records if r["name"].startswith("frame-")][1:]  # after the warm-up frame
camera_ms = sorted((arrived[r["key"]] - captured(r)) * 1000 for r in camera)
p50_c, p95_c = statistics.median(camera_ms), statistics.quantiles(camera_ms, n=20)[18]
burst = [r for r in records if r["name"].startswith("burst-")]
rate = (len(burst) - 1) / (recorded(burst[-1]) - recorded(burst[0]))
inspect = statistics.median(r["inspect_ms"] for r in burst)
print(f"{p50_1:.0f} {p95_1:.0f} {p50_5:.0f} {p95_5:.0f} {rate:.2f} {inspect:.0f} {p50_c:.0f} "
      f"{p95_c:.0f} {len(camera)}")
EOF
)
read -r p50_1 p95_1 p50_5 p95_5 rate inspect_ms p50_c p95_c frames <<<"$report"

# --- three lanes, memory over time --------------------------------------------------------------
cat >"$work/run/station.toml" <<EOF
name = "bench3"
state = "state3"
[http]
port = 0
threads = 2
EOF
for category in tile leather grid; do
  mkdir -p "$work/run/in3/$category"
  cat >>"$work/run/station.toml" <<EOF
[[lanes]]
name = "$category"
model = "$work/models/$category.pvm"
[lanes.folder]
dir = "in3/$category"
[[lanes.mqtt]]
url = "mqtt://127.0.0.1:$port/bench/$category"
EOF
done
"$patchvec" station --config "$work/run/station.toml" >"$work/run/station3.log" 2>&1 &
station=$!
pids+=($station)
droppers=()
for category in tile leather grid; do
  drop "$work/run/in3/$category" m "$seconds" 1 "$category" &
  droppers+=($!)
done
rss=()
for t in $(seq 10 10 "$seconds"); do
  sleep 10
  rss+=("$(awk '/VmRSS/ {print $2}' "/proc/$station/status")")
done
wait "${droppers[@]}"
sleep 2
kill -TERM $station
wait $station || true
total=0
for category in tile leather grid; do
  total=$((total + $(recorded "$work/run/state3/lanes/$category")))
done
first=${rss[5]:-${rss[0]}}  # after a minute: models loaded, buffers grown
last=${rss[-1]}
max=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
echo "3-lane RSS every 10 s (KiB): ${rss[*]}" >"$work/run/rss.txt"

summary="station: capture-to-MQTT p50/p95 ${p50_1}/${p95_1} ms at 1 image/s, ${p50_5}/${p95_5} ms at 5 images/s; one lane sustains ${rate} images/s (inspection ${inspect_ms} ms an image); a camera's frame to MQTT p50/p95 ${p50_c}/${p95_c} ms (${frames} triggered frames, 512x512 Bayer); the journal costs ${outbox_us} us an image; 3 lanes for ${seconds} s: ${total} images, RSS $((first / 1024)) MiB at 1 min, $((last / 1024)) MiB at the end (max $((max / 1024)) MiB)"
echo "$summary"
[ "$total" -ge $((3 * seconds * 9 / 10)) ] || { echo "station bench: only $total images recorded" >&2; exit 1; }
[ "$last" -le $((first * 11 / 10)) ] || { echo "station bench: memory grew" >&2; exit 1; }
