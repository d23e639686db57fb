#!/usr/bin/env bash
# The browser test: trains the fixture category, indexes it, serves it, and drives the page with
# playwright-core (npm, installed into the build tree) in Debian's headless Chromium.
#   tests/web/run.sh BUILD_DIR FIXTURE_DIR
set -euo pipefail
build=$(realpath "$1")
fixtures=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
work="$build/web-test"
mkdir -p "$work/screenshots"
cp "$here/package.json" "$here/page_test.mjs" "$work/"
if [ ! -d "$work/node_modules/playwright-core" ]; then
  (cd "$work" && timeout 300 npm install --no-audit --no-fund --silent)
fi
patchvec="$build/patchvec"
data="$fixtures/patchcore/data"
rm -rf "$work/models"
"$patchvec" -q train --data "$data" --category synthetic --backbone resnet18 \
  --weights "$fixtures/patchcore/resnet18.safetensors" --out "$work/models"
"$patchvec" -q index --model "$work/models/synthetic.pvm" --data "$data"

"$patchvec" -q serve --models "$work/models" --port 0 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
url=""
for _ in $(seq 100); do
  url=$(grep -o 'http://[0-9.:]*/' "$work/serve.log" || true)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { cat "$work/serve.log"; exit 1; }
cd "$work" && timeout 120 node page_test.mjs "$url" "$data/synthetic/test/blob/001.png" \
  "$data/synthetic/test/good/000.png" "$work/screenshots"
