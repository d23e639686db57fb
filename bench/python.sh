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
# The data and weights bench/patchcore_vs_pytorch.sh makes (other benchmarks' models name these
# weights: they are made once, never replaced).
if [ ! -d "$data/sample/train/good" ]; then
  $python scripts/make-sample-data.py "$data" --train 100 --test-good 10 --test-bad 10 --size 1024 --seed 5
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

# The call's own cost shows against a small model: resnet18 on 256-pixel images (a few ms a call),
# as well as against the model above (one 1024-pixel image: ~160 ms). Three rounds, the two sides
# taking turns; each side's median of the rounds' medians (60 calls each).
small="$work/python_small"
if [ ! -f "$small/models/tile.pvm" ]; then
  "$build/patchvec" -q synth --out "$small/data" --categories tile --train 10 --test-good 2 \
    --test-bad 1 --size 256 > /dev/null
  "$build/patchvec" -q train --data "$small/data" --category tile --backbone resnet18 \
    --out "$small/models" --no-evaluation > /dev/null 2>&1
fi
calls() {  # model image -> JSON lines "cxx" and "py", medians over the rounds
  local cxx=() py=()
  for round in 1 2 3; do
    cxx+=("$("$build/bench/predict_call_bench" --model "$1" --image "$2" --repeat 60)")
    py+=("$($python bench/python_bench.py call "$1" "$2" --repeat 60)")
  done
  $python - "${cxx[@]}" "${py[@]}" <<'PY'
import json, statistics, sys
rows = [json.loads(a) for a in sys.argv[1:]]
cxx, py = rows[:3], rows[3:]
m = lambda rs, k: statistics.median(r[k] for r in rs)
print(json.dumps({"file_ms": m(cxx, "file_ms"), "image_ms": m(cxx, "image_ms"),
                  "py_file_ms": m(py, "file_ms"), "py_array_ms": m(py, "array_ms"),
                  "blas": py[0]["blas"]}))
PY
}
echo "== one predict() call: Python vs C++"
large_calls=$(calls "$work/python_models/sample.pvm" "$data/sample/test/good/000.png")
small_calls=$(calls "$small/models/tile.pvm" "$small/data/tile/test/good/000.png")

$python - "$ours" "$reference_train" "$reference_predict" "$large_calls" "$small_calls" <<'PY'
import json, sys
ours, rtrain, rpredict, large, small = (json.loads(a) for a in sys.argv[1:])
bank_s = ours["fit_s"] - ours["calibrate_s"]
print(f"  patchvec from Python: fit {ours['fit_s']:.1f} s (bank {bank_s:.1f} s: embed "
      f"{ours['embed_s']:.1f}, coreset {ours['coreset_s']:.1f}; thresholds "
      f"{ours['calibrate_s']:.1f}), predict {ours['ms_per_image']:.1f} ms an image")
print(f"  PyTorch (anomalib's algorithm): fit {rtrain['total_s']:.1f} s (embed "
      f"{rtrain['embed_s']:.1f}, coreset {rtrain['coreset_s']:.1f}; no thresholds), predict "
      f"{rpredict['ms_per_image']['total']:.1f} ms an image")
for name, c in (("wide_resnet50_2, 1024-px image", large), ("resnet18, 256-px image", small)):
    print(f"  one call, {name}: predict(path) C++ {c['file_ms']:.2f} ms, Python "
          f"{c['py_file_ms']:.2f} ({c['py_file_ms'] - c['file_ms']:+.2f}); predict(array) Python "
          f"{c['py_array_ms']:.2f} vs C++ on the decoded image {c['image_ms']:.2f} "
          f"({c['py_array_ms'] - c['image_ms']:+.2f}, the array's conversion included)")
print(f"python: fit {ours['fit_s']:.1f} s (bank {bank_s:.1f} s) vs PyTorch {rtrain['total_s']:.1f} s, "
      f"predict {ours['ms_per_image']:.1f} vs {rpredict['ms_per_image']['total']:.1f} ms/image, "
      f"per-call overhead {small['py_file_ms'] - small['file_ms']:+.2f} ms (resnet18) "
      f"{large['py_file_ms'] - large['file_ms']:+.2f} ms (wide_resnet50_2); BLAS {large['blas']}")
PY
