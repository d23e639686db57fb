#!/usr/bin/env bash
# patchvec train/predict vs PatchCore in PyTorch (bench/reference_patchcore.py), anomalib's way.
#
# A 100-image texture category (1024x1024 PNG, bench data from scripts/make-sample-data.py) with
# 20 test images; wide_resnet50_2 with seeded random weights whose BatchNorm statistics were
# re-estimated on the training images (realistic features without a download); 10 % coreset;
# both sides on every core. The PyTorch side runs with OPENBLAS_CORETYPE=SKYLAKEX, the fast BLAS
# kernels patchvec also selects (Debian's OpenBLAS 0.3.21 falls back to generic ones on this CPU);
# its results are cached in the bench folder because its training takes ~10 minutes: pass
# --rerun-reference to measure it again.
#
#   bench/patchcore_vs_pytorch.sh [BUILD_DIR] [--rerun-reference]
set -euo pipefail
build=${1:-build}
rerun=${2:-}
python=/usr/bin/python3
work="$build/bench-data/patchcore"
data="$work/data"
weights="$work/weights.safetensors"
mkdir -p "$work"
if [ ! -f "$weights" ]; then
  $python scripts/make-sample-data.py "$data" --train 100 --test-good 10 --test-bad 10 --size 1024 --seed 5
  $python scripts/export-weights.py wide_resnet50_2 "$weights" --random-seed 0 \
    --calibrate-on "$data/sample/train/good"
fi
export OPENBLAS_CORETYPE=SKYLAKEX  # for the PyTorch side; patchvec would set it itself

reference() {  # name, then arguments: cached JSON line
  local name=$1; shift
  if [ "$rerun" = "--rerun-reference" ] || [ ! -s "$work/$name.json" ]; then
    $python bench/reference_patchcore.py "$@" > "$work/$name.json"
  fi
  cat "$work/$name.json"
}

echo "== train: 100 images, 10 % coreset"
"$build/patchvec" -q train --data "$data" --category sample --weights "$weights" \
  --out "$work/models" --json "$work/ours_train.json" > /dev/null
ours=$(cat "$work/ours_train.json")
anomalib=$(reference reference_train_anomalib train "$data" sample "$weights" "$work/reference_bank.pt" --form anomalib)
best=$(reference reference_train_best train "$data" sample "$weights" "$work/reference_bank_best.pt" --form best)
$python - "$ours" "$anomalib" "$best" <<'PY'
import json, sys
ours = json.loads(sys.argv[1])[0]["fit"]
anomalib, best = json.loads(sys.argv[2]), json.loads(sys.argv[3])
t = ours["timings"]
steps = max(ours["bank_size"] - 1, 1)
print(f"  {'':34} {'embed':>8} {'coreset':>9} {'ms/step':>8} {'total':>8}")
print(f"  {'patchvec train (fit)':34} {t['embed_s']:8.1f} {t['coreset_s']:9.1f} {1000 * t['coreset_s'] / steps:8.2f} {t['fit_s']:8.1f}")
for name, r in (("PyTorch, anomalib's loop", anomalib), ("PyTorch, |z|^2 - 2z.c loop", best)):
    print(f"  {name:34} {r['embed_s']:8.1f} {r['coreset_s']:9.1f} {r['coreset_ms_per_step']:8.2f} {r['total_s']:8.1f}"
          f"   train {r['total_s'] / t['fit_s']:.0f}x, coreset {r['coreset_s'] / t['coreset_s']:.0f}x")
print(f"  covering radius (projected space): patchvec {ours['covering_radius']:.3f}; "
      f"peak memory {ours['peak_memory_bytes'] / 2**30:.2f} GiB")
PY

echo "== covering radius in the full 1536-d space (both 10 % banks of the same 78,400 patches)"
"$build/patchvec" -q embed --data "$data" --category sample --weights "$weights" \
  --out "$work/train_embeddings.npy" > /dev/null 2>&1
$python bench/covering_radius.py "$work/train_embeddings.npy" "$work/models/sample.pvm" \
  "$work/reference_bank.pt"

echo "== predict: 20 test images, batches of 8, per image (median of 3 runs)"
images=("$data/sample/test/good" "$data/sample/test/scratch" "$data/sample/test/stain")
for round in 1 2 3; do
  "$build/patchvec" predict --json --model "$work/models/sample.pvm" "${images[@]}" 2>/dev/null \
    > "$work/ours_predict_$round.json"
  $python bench/reference_patchcore.py predict "$data" sample "$weights" "$work/reference_bank.pt" \
    > "$work/reference_predict_$round.json"
done
env -u OPENBLAS_CORETYPE $python bench/reference_patchcore.py predict "$data" sample "$weights" \
  "$work/reference_bank.pt" > "$work/reference_predict_generic_blas.json"
$python - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
def load(name): return json.load(open(f"{work}/{name}"))
ours = [load(f"ours_predict_{r}.json")["timings"]["ms_per_image"] for r in (1, 2, 3)]
ref = [load(f"reference_predict_{r}.json")["ms_per_image"] for r in (1, 2, 3)]
generic = json.loads(open(f"{work}/reference_predict_generic_blas.json").read())["ms_per_image"]
keys = ["read", "backbone", "search", "map"]
def row(name, runs):
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    med["total"] = sum(med[k] for k in keys)
    print(f"  {name:36} " + " ".join(f"{med[k]:8.1f}" for k in keys + ['total']))
    return med
print(f"  {'ms per image':36} " + " ".join(f"{k:>8}" for k in keys + ['total']))
a = row("patchvec predict", ours)
b = row("PyTorch (OPENBLAS_CORETYPE=SKYLAKEX)", ref)
c = row("PyTorch (Debian's default OpenBLAS)", [generic])
print(f"  patchvec is {b['total'] / a['total']:.2f}x faster per image "
      f"({c['total'] / a['total']:.2f}x against the default setup); search {b['search'] / a['search']:.1f}x")
PY
