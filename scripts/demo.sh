#!/usr/bin/env bash
# The end-to-end job on the embedded default: no dataset, no weights, no network.
# Writes a sample category, trains PatchCore on it, evaluates it (AUROC table, overlays, ROC
# curve) and scores two new images. Similarity search over pgvector joins with its issue.
set -euo pipefail
build=${1:-build}
out=${PATCHVEC_DEMO_DIR:-$build/demo}
patchvec="$build/patchvec"
mkdir -p "$out"
if [ ! -d "$out/data/sample/test" ]; then
  echo "demo: writing a sample category (grainy surface; scratches and stains) to $out/data" >&2
  /usr/bin/python3 scripts/make-sample-data.py "$out/data" --train 16 --test-good 6 --test-bad 6
fi

echo "== train (wide_resnet50_2, random weights with BatchNorm re-estimated, 10 % coreset)"
"$patchvec" train --data "$out/data" --category sample --out "$out/models" --json "$out/train.json"

echo "== evaluate: per-image scores, overlays and ROC curve"
"$patchvec" eval --model "$out/models/sample.pvm" --data "$out/data" --json "$out/eval.json" \
  --overlays "$out/pictures"

echo "== predict: score a scratched and a good test image, with heatmaps"
"$patchvec" predict --model "$out/models/sample.pvm" --heatmap "$out/pictures/predict" \
  "$out/data/sample/test/scratch/000.png" "$out/data/sample/test/good/000.png"

cat <<MSG

Pictures: $out/pictures/sample/*.png (image | ground truth | anomaly map),
          $out/pictures/sample_roc.png, $out/pictures/predict/*_heatmap.png
Results:  $out/eval.json (per-image scores), $out/train.json (timings, bank size)
On your own data:  $patchvec train --data /path/to/mvtec --category tile,leather,grid --out models
With ImageNet weights (README, 'Pretrained weights'): add --weights wide_resnet50_2.safetensors
MSG
