#!/usr/bin/env bash
# patchvec embed vs the same job in PyTorch (bench/reference_embed.py), on a 60-image category of
# 1024x1024 PNGs with seeded random wide_resnet50_2 weights, both on every core.
# Runs are interleaved and repeated (this machine's neighbours are noisy); medians are reported.
#
#   bench/embed_vs_pytorch.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
python=/usr/bin/python3
work="$build/bench-data/embed"
threads=$(nproc)
mkdir -p "$work"
if [ ! -f "$work/weights.safetensors" ]; then
  $python scripts/make-sample-data.py "$work/data" --train 60 --size 1024 --seed 1
  $python scripts/export-weights.py wide_resnet50_2 "$work/weights.safetensors" --random-seed 0
fi

seconds() {
  local start=$EPOCHREALTIME
  "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; exit 1; }
  awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}'
}
report() {  # label, seconds[, reference seconds]
  awk -v l="$1" -v s="$2" -v r="${3:-}" 'BEGIN {
    printf "  %-34s %6.1f s  (%4.0f ms/image)", l, s, 1000 * s / 60
    if (r != "") printf "  patchvec/this = %.2f", r / s
    printf "\n" }'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

ours=() torch_default=() torch_channels_last=()
for round in $(seq "$rounds"); do
  ours+=("$(seconds "$build/patchvec" embed --data "$work/data" --category sample \
    --weights "$work/weights.safetensors" --threads "$threads" --out "$work/ours.npy")")
  torch_default+=("$(seconds $python bench/reference_embed.py "$work/data/sample/train/good" \
    "$work/weights.safetensors" "$work/reference.npy" --threads "$threads")")
  torch_channels_last+=("$(seconds $python bench/reference_embed.py "$work/data/sample/train/good" \
    "$work/weights.safetensors" "$work/reference.npy" --threads "$threads" --channels-last)")
done
a=$(printf '%s\n' "${ours[@]}" | median)
b=$(printf '%s\n' "${torch_default[@]}" | median)
c=$(printf '%s\n' "${torch_channels_last[@]}" | median)
difference=$($python -c "
import numpy as np
a, b = np.load('$work/ours.npy'), np.load('$work/reference.npy')
print(f'{float(np.abs(a - b).max() / np.abs(b).max()):.1e}')")

echo "patchvec embed, 60 images 1024x1024 PNG, wide_resnet50_2, $threads threads, median of $rounds:"
report "patchvec embed" "$a"
report "PyTorch eager (anomalib's way)" "$b" "$a"
report "PyTorch eager, channels-last" "$c" "$a"
echo "  max |patchvec - PyTorch| / max |PyTorch| = $difference"
