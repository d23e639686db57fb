#!/usr/bin/env bash
# Prediction against a large bank: the 1,000-image category of bench/large_fit.sh (a bank of
# 78,400 patches; trained here without evaluation if that benchmark has not run) against a
# 100-image model of the same data (7,840 patches), `patchvec predict` on the same 40 images,
# one run each: the small model as it chooses (--search auto), the large one with --search exact
# and with --search shortlist (their image scores compared bit for bit, their maps value by
# value); then the search alone on the large bank, whole against partitioned against the
# shortlist, on those images' embeddings (recall@1 of the shortlist). Ends with one summary line;
# fails when the exact searches' answers or the two models' image scores differ. Issue 25's
# target, printed, not enforced: the large bank's predict <= 1.5x the small one's per image.
#
#   bench/large_bank.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
python=/usr/bin/python3
work="$build/bench-data/memory"
data="$work/data"
weights="$build/bench-data/patchcore/weights.safetensors"
bank="$work/bank"
mkdir -p "$bank"
if [ ! -d "$data/sample/train/good" ]; then
  $python scripts/make-sample-data.py "$data" --train 1000 --test-good 4 --test-bad 4 --size 256 --seed 9
fi
[ -f "$weights" ] || $python scripts/export-weights.py wide_resnet50_2 "$weights" --random-seed 0
large="$work/models/sample.pvm"
if [ ! -f "$large" ]; then
  "$build/patchvec" -q train --data "$data" --category sample --weights "$weights" \
    --max-memory 4G --no-evaluation --out "$work/models" >/dev/null
fi
# The small model: the first 100 training images.
rm -rf "$bank/small" "$bank/queries" && mkdir -p "$bank/small/sample/train/good" "$bank/queries"
ls "$data/sample/train/good" | sort | head -n 100 | while read -r f; do
  ln -s "$(realpath "$data/sample/train/good/$f")" "$bank/small/sample/train/good/$f"
done
"$build/patchvec" -q train --data "$bank/small" --category sample --weights "$weights" \
  --no-evaluation --out "$bank/small-model" >/dev/null
# 40 images: the test split's, five times over.
i=0
for round in 1 2 3 4 5; do
  for f in "$data"/sample/test/*/*.png; do
    i=$((i + 1)); cp "$f" "$bank/queries/q$i.png"
  done
done
for name in small exact shortlist; do
  model=$([ "$name" = small ] && echo "$bank/small-model/sample.pvm" || echo "$large")
  search=$([ "$name" = small ] && echo auto || echo "$name")
  rm -rf "$bank/maps-$name"
  start=$EPOCHREALTIME
  "$build/patchvec" -q predict --model "$model" "$bank/queries" --search "$search" \
    --maps "$bank/maps-$name" --json >"$bank/$name.json"
  awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}' >"$bank/$name.wall"
done
# The search alone: the large bank and the 40 images' patches.
mkdir -p "$bank/embed/sample/train/good"
cp "$bank"/queries/*.png "$bank/embed/sample/train/good/"
"$build/patchvec" -q embed --data "$bank/embed" --category sample --weights "$weights" \
  --out "$bank/queries.npy" >/dev/null
$python - "$large" "$bank/bank.npy" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "bench")
from covering_radius import pvm_bank  # the bank, straight from the model file's section table
np.save(sys.argv[2], pvm_bank(sys.argv[1]).numpy())
PY
"$build/bench/search_bench" "$bank/bank.npy" "$bank/queries.npy" --batch 8 --candidates 64 \
  --components 128 | tee "$bank/search.txt"
rm -f "$bank/bank.npy" "$bank/queries.npy"

$python - "$bank" <<'PY'
import glob, json, re, sys
import numpy as np
bank = sys.argv[1]
runs = {}
for name in ("small", "exact", "shortlist"):
    run = json.load(open(f"{bank}/{name}.json"))
    t = run["timings"]
    runs[name] = {"total": sum(t["ms_per_image"].values()), "search": t["ms_per_image"]["search"],
                  "wall": float(open(f"{bank}/{name}.wall").read()), "method": run["search"],
                  "remeasured": t["remeasured_patches"] / t["images"],
                  "scores": [p["score"] for p in run["predictions"]]}
same_scores = runs["exact"]["scores"] == runs["shortlist"]["scores"]
errors = []
for f in sorted(glob.glob(f"{bank}/maps-exact/*_map.npy")):
    a = np.load(f).astype(np.float64)
    b = np.load(f.replace("maps-exact", "maps-shortlist")).astype(np.float64)
    errors.append(((b - a) / a).ravel())
errors = np.concatenate(errors)
text = open(f"{bank}/search.txt").read()
clusters = re.search(r"(\d+) clusters", text).group(1)
search = re.search(r"search: whole ([\d.]+) ms/image, partitioned ([\d.]+) ms/image", text).groups()
shortlist = re.search(r"shortlist .*?: build ([\d.]+) s, ([\d.]+) ms/image .*recall@1 ([\d.]+)", text).groups()
same = "identical" in text
s, e, l = runs["small"], runs["exact"], runs["shortlist"]
print(f"large bank: predict {s['total']:.1f} ms/image with a 7,840-patch bank ({s['method']}, search "
      f"{s['search']:.1f}) vs 78,400: exact {e['total']:.1f} (search {e['search']:.1f}), shortlist "
      f"{l['total']:.1f} (search {l['search']:.1f}, {l['remeasured']:.2f} patches/image remeasured): "
      f"{l['total'] / s['total']:.2f}x (target 1.5x); image scores {'identical' if same_scores else 'DIFFERENT'}, "
      f"map relative error mean {errors.mean():.1e} max {errors.max():.1e}; wall for 40 images "
      f"{s['wall']:.1f} / {e['wall']:.1f} / {l['wall']:.1f} s | search alone, 8 images a call: whole "
      f"{float(search[0]):.1f} ms/image, partitioned ({clusters} clusters) {float(search[1]):.1f}, "
      f"shortlist {float(shortlist[1]):.1f} (recall@1 {float(shortlist[2]):.5f}, built in "
      f"{float(shortlist[0]):.1f} s); exact answers {'identical' if same else 'DIFFERENT'}")
sys.exit(0 if same and same_scores else 1)
PY
