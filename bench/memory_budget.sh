#!/usr/bin/env bash
# A 1,000-image fit under --max-memory 4G: 784,000 training patches (4.8 GB as float32) cannot stay
# in memory, so they go to a temporary file and only the coreset is read back. Reports the peak
# resident memory (getrusage) and fails if it exceeds the budget.
#
#   bench/memory_budget.sh [BUILD_DIR] [IMAGES] [CORESET_RATIO]
set -euo pipefail
build=${1:-build}
images=${2:-1000}
ratio=${3:-0.01}
python=/usr/bin/python3
work="$build/bench-data/memory"
mkdir -p "$work"
# A small labelled test split: thresholds F1-optimal on it, so that the fit is measured alone
# (thresholds from good images cross-fit a second bank on the training images).
if [ ! -d "$work/data/sample/train/good" ] || [ ! -d "$work/data/sample/test" ] || \
   [ "$(ls "$work/data/sample/train/good" | wc -l)" -ne "$images" ]; then
  rm -rf "$work/data"
  $python scripts/make-sample-data.py "$work/data" --train "$images" --test-good 4 --test-bad 4 --size 256 --seed 9
fi
weights="$build/bench-data/patchcore/weights.safetensors"
[ -f "$weights" ] || $python scripts/export-weights.py wide_resnet50_2 "$weights" --random-seed 0
start=$EPOCHREALTIME
"$build/patchvec" train --data "$work/data" --category sample --weights "$weights" \
  --coreset-ratio "$ratio" --max-memory 4G --threshold f1 --out "$work/models" --json "$work/train.json" >/dev/null
$python - "$work/train.json" "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')" <<'PY'
import json, sys
fit = json.load(open(sys.argv[1]))[0]["fit"]
peak = fit["peak_memory_bytes"] / 2**30
t = fit["timings"]
print(f"{fit['train_images']} images, {fit['train_patches']} patches ({fit['train_patches'] * 1536 * 4 / 1e9:.1f} GB as float32), "
      f"bank {fit['bank_size']}, spilled to disk: {fit['spilled_to_disk']}")
print(f"peak memory {peak:.2f} GiB (budget 4 GiB); embed {t['embed_s']:.0f} s, coreset {t['coreset_s']:.0f} s, "
      f"bank neighbours {t['bank_neighbors_s']:.0f} s, wall {float(sys.argv[2]):.0f} s")
sys.exit(0 if peak <= 4.0 else 1)
PY
