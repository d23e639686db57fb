#!/usr/bin/env bash
# The Python module (docs/python.md) measured: the per-call overhead of predict() against the same
# call from C++, and a 100-image fit + predict from Python against PatchCore in PyTorch
# (bench/reference_patchcore.py, anomalib's algorithm), in one run on the same data as
# bench/patchcore_vs_pytorch.sh (100 1024x1024 textures, wide_resnet50_2 with seeded random
# weights BatchNorm-calibrated on them, 10 % coreset, 20 test images, every core).
#
#   bench/python.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
python=/usr/bin/python3
work="$build/bench-data/patchcore"
data="$work/data"
weights="$work/weights.safetensors"
mkdir -p "$work"
if [ ! -d "$data/sample/train/good" ]; then
  $python scripts/make-sample-data.py "$data" --train 100 --test-good 10 --test-bad 10 --size 1024 --seed 5
  rm -f "$weights"
fi
if [ ! -f "$weights" ]; then
  $python scripts/export-weights.py wide_resnet50_2 "$weights" --random-seed 0 \
    --calibrate-on "$data/sample/train/good"
fi
export PYTHONPATH="$build/python"

echo "== fit + predict: 100 training images, 20 test images"
ours=$($python bench/python_bench.py fit "$data" sample "$weights")
"$build/patchvec" -q train --data "$data" --category sample --weights "$weights" \
  --out "$work/python_models" --no-evaluation > /dev/null
# PyTorch: the fastest form of anomalib's loop (bench/patchcore_vs_pytorch.sh has both forms),
# with OpenBLAS's fast kernels, which the module picks for itself.
reference_train=$(OPENBLAS_CORETYPE=SKYLAKEX $python bench/reference_patchcore.py train "$data" \
  sample "$weights" "$work/python_reference_bank.pt" --form best)
reference_predict=$(OPENBLAS_CORETYPE=SKYLAKEX $python bench/reference_patchcore.py predict \
  "$data" sample "$weights" "$work/python_reference_bank.pt")

echo "== one predict() call: Python vs C++ (median of 30)"
image="$data/sample/test/good/000.png"
model="$work/python_models/sample.pvm"
cxx=$("$build/bench/predict_call_bench" --model "$model" --image "$image" --repeat 30)
py=$($python bench/python_bench.py call "$model" "$image" --repeat 30)

$python - "$ours" "$reference_train" "$reference_predict" "$cxx" "$py" <<'PY'
import json, sys
ours, rtrain, rpredict, cxx, py = (json.loads(a) for a in sys.argv[1:])
bank_s = ours["fit_s"] - ours["calibrate_s"]
print(f"  patchvec from Python: fit {ours['fit_s']:.1f} s (bank {bank_s:.1f} s: embed "
      f"{ours['embed_s']:.1f}, coreset {ours['coreset_s']:.1f}; thresholds "
      f"{ours['calibrate_s']:.1f}), predict {ours['ms_per_image']:.1f} ms an image")
print(f"  PyTorch (anomalib's algorithm): fit {rtrain['total_s']:.1f} s (embed "
      f"{rtrain['embed_s']:.1f}, coreset {rtrain['coreset_s']:.1f}; no thresholds), predict "
      f"{rpredict['ms_per_image']['total']:.1f} ms an image")
print(f"  one image, predict(path): C++ {cxx['file_ms']:.2f} ms, Python {py['file_ms']:.2f} ms "
      f"(+{py['file_ms'] - cxx['file_ms']:.2f}); predict(array) from Python {py['array_ms']:.2f} ms "
      f"vs C++ on the decoded image {cxx['image_ms']:.2f} (+{py['array_ms'] - cxx['image_ms']:.2f}, "
      f"the array's conversion included); BLAS {py['blas']}")
print(f"python: fit {ours['fit_s']:.1f} s (bank {bank_s:.1f} s) vs PyTorch {rtrain['total_s']:.1f} s, "
      f"predict {ours['ms_per_image']:.1f} vs {rpredict['ms_per_image']['total']:.1f} ms/image, "
      f"per-call overhead {py['file_ms'] - cxx['file_ms']:+.2f} ms")
PY
