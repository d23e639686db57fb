#!/usr/bin/env bash
# The end-to-end job on the embedded default: no dataset, no weights, no network.
# Today that is the embedding engine; training, scoring and search join as they land.
set -euo pipefail
build=${1:-build}
out=${PATCHVEC_DEMO_DIR:-$build/demo}
mkdir -p "$out"
if [ ! -d "$out/data/sample/train/good" ]; then
  echo "demo: writing a sample category to $out/data" >&2
  /usr/bin/python3 scripts/make-sample-data.py "$out/data" --train 16
fi
"$build/patchvec" embed --data "$out/data" --category sample --backbone wide_resnet50_2 \
  --out "$out/sample_embeddings.npy"
cat <<MSG

The demo embedded every training image of $out/data/sample into 28 x 28 PatchCore patches of
1536 dimensions ($out/sample_embeddings.npy, loadable with numpy.load).
On your own images:   $build/patchvec embed --data /path/to/mvtec --category tile --out tile.npy
With ImageNet weights (see README, 'Pretrained weights'): add --weights wide_resnet50_2.safetensors
MSG
