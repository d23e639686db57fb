#!/usr/bin/env bash
# The browser test: trains the fixture category, indexes it, serves it, and drives the page with
# playwright-core (npm, installed into the build tree) in Debian's headless Chromium; then runs a
# station on the same model with a folder and drives its Station tab.
#   tests/web/run.sh BUILD_DIR FIXTURE_DIR
set -euo pipefail
build=$(realpath "$1")
fixtures=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
work="$build/web-test"
mkdir -p "$work/screenshots"
cp "$here/package.json" "$here/page_test.mjs" "$here/station_test.mjs" "$work/"
if [ ! -d "$work/node_modules/playwright-core" ]; then
  (cd "$work" && timeout 300 npm install --no-audit --no-fund --silent)
fi
patchvec="$build/patchvec"
# The URL a server prints once it listens (at most 20 s), or its log and a failure.
url_in() {
  for _ in $(seq 100); do
    grep -o 'http://[0-9.:]*/' "$1" && return 0
    sleep 0.2
  done
  cat "$1" >&2
  return 1
}
data="$fixtures/patchcore/data"
rm -rf "$work/models" "$work/serve.log"
"$patchvec" -q train --data "$data" --category synthetic --backbone resnet18 \
  --weights "$fixtures/patchcore/resnet18.safetensors" --out "$work/models"
"$patchvec" -q index --model "$work/models/synthetic.pvm" --data "$data"

"$patchvec" -q serve --models "$work/models" --port 0 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
url=$(url_in "$work/serve.log")
(cd "$work" && timeout 120 node page_test.mjs "$url" "$data/synthetic/test/blob/001.png" \
  "$data/synthetic/test/good/000.png" "$work/screenshots")
kill $server; wait $server 2>/dev/null || true

# The station: a lane on the same model with a hot folder (and a webhook that is down), a lane on
# Aravis's in-process simulated camera (free-running at 2 frames a second), a lane whose camera is
# not there; the Station tab.
rm -rf "$work/station" "$work/station.log" && mkdir -p "$work/station/in"
down_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/station/station.toml" <<TOML
name = "web-test"
state = "$work/station/state"
[[lanes]]
name = "main"
model = "$work/models/synthetic.pvm"
[lanes.folder]
dir = "$work/station/in"
[[lanes.webhook]]
url = "http://127.0.0.1:$down_port/down"
[[lanes]]
name = "cam"
model = "$work/models/synthetic.pvm"
[lanes.camera]
id = "Fake_1"
frame_rate = 2
pixel_format = "Mono8"
[[lanes]]
name = "gone"
model = "$work/models/synthetic.pvm"
[lanes.camera]
id = "No-Such-Camera"
trigger = "software"
TOML
"$patchvec" station --config "$work/station/station.toml" --port 0 >"$work/station.log" 2>&1 &
server=$!
url=$(url_in "$work/station.log")
cd "$work" && timeout 120 node station_test.mjs "$url" "$work/station/in" \
  "$data/synthetic/test/blob/001.png" "$data/synthetic/test/good/000.png" "$work/screenshots"
