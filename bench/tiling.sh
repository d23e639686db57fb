#!/usr/bin/env bash
# Tiling on high-resolution images with small defects: `patchvec synth --size 1024` with defects
# drawn as on a smaller image (--defect-scale), one model resized to 256 as usual and one cut into
# tiles, both evaluated on the same test split. Ends with one summary line: image and pixel AUROC
# side by side, and what tiling costs per image (fit and prediction).
#
#   bench/tiling.sh [BUILD_DIR] [SIZE] [DEFECT_SCALE] [TILE] [TILE_SCALE] [TRAIN_IMAGES]
set -euo pipefail
build=${1:-build}
size=${2:-1024}
defect_scale=${3:-0.25}
tile=${4:-256}
tile_scale=${5:-0.5}
train=${6:-20}
python=/usr/bin/python3
work="$build/bench-data/tiling-$size-$defect_scale-$train"
categories=tile,leather
mkdir -p "$work"
if [ ! -f "$work/data/synth.json" ]; then
  "$build/patchvec" -q synth --out "$work/data" --categories "$categories" --size "$size" \
    --defect-scale "$defect_scale" --train "$train" --test-good 8 --test-bad 3
fi
run() {  # NAME, then train options
  local name=$1
  shift
  # Thresholds do not matter here (AUROC does); a fixed one spares the cross-fit.
  "$build/patchvec" -q train --data "$work/data" --category "$categories" --threshold 1e30 \
    --no-evaluation --out "$work/$name" --json "$work/$name-train.json" "$@" >/dev/null
  "$build/patchvec" -q eval --model "$work/$name/tile.pvm" "$work/$name/leather.pvm" \
    --data "$work/data" --json "$work/$name-eval.json" >/dev/null
}
run plain
run tiled --tile "$tile" --tile-scale "$tile_scale"

$python - "$work" "$size" "$defect_scale" "$tile" "$tile_scale" "$(nproc)" <<'PY'
import json, sys
work, size, defect_scale, tile, tile_scale, cores = sys.argv[1:]
rows = {}
for name in ("plain", "tiled"):
    fits = {e["category"]: e["fit"] for e in json.load(open(f"{work}/{name}-train.json"))}
    for e in json.load(open(f"{work}/{name}-eval.json")):
        c = e["category"]
        t = e["timings"]
        rows.setdefault(c, {})[name] = {
            "image": e["image_auroc"], "pixel": e["pixel_auroc"], "pro": e["pro"],
            "fit": fits[c]["timings"]["fit_s"], "patches": fits[c]["train_patches"],
            "predict_ms": 1000 * (t["read_s"] + t["backbone_s"] + t["search_s"] + t["map_s"]) / t["images"]}
print(f"{'category':10} {'':6} {'image AUROC':>11} {'pixel AUROC':>11} {'PRO':>6} {'fit s':>7} {'patches':>8} {'ms/image':>9}")
for c, r in rows.items():
    for name, v in r.items():
        print(f"{c:10} {name:6} {v['image']:11.3f} {v['pixel']:11.3f} {v['pro']:6.3f} {v['fit']:7.1f} {v['patches']:8d} {v['predict_ms']:9.0f}")
parts = []
for c, r in rows.items():
    p, t = r["plain"], r["tiled"]
    parts.append(f"{c} image AUROC {p['image']:.3f} -> {t['image']:.3f}, pixel {p['pixel']:.3f} -> {t['pixel']:.3f}")
p_ms = sum(r["plain"]["predict_ms"] for r in rows.values()) / len(rows)
t_ms = sum(r["tiled"]["predict_ms"] for r in rows.values()) / len(rows)
p_fit = sum(r["plain"]["fit"] for r in rows.values()) / len(rows)
t_fit = sum(r["tiled"]["fit"] for r in rows.values()) / len(rows)
print(f"tiling: {size}px images, defects drawn at scale {defect_scale}, resized to 256 vs tiles of "
      f"{tile} at scale {tile_scale}: " + "; ".join(parts) +
      f" | per image: predict {p_ms:.0f} -> {t_ms:.0f} ms, fit {p_fit:.0f} -> {t_fit:.0f} s per category "
      f"on {cores} cores")
PY
