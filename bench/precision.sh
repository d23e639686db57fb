#!/usr/bin/env bash
# Precisions side by side, in one run on this machine:
#   1. the backbone (up to layer3 plus the patch features), ms per image at batch 1 and 8, for
#      wide_resnet50_2 and resnet18: patchvec fp32 / bf16 / int8 (bench/nn_bench) against PyTorch
#      fp32 eager and torch.autocast("cpu", dtype=torch.bfloat16) (bench/precision_reference.py);
#   2. make demo's three categories (100 training images each, wide_resnet50_2 with BatchNorm-
#      calibrated random weights: nothing is downloaded) and the parity data (the PatchCore
#      fixture category, seeded resnet18 weights) trained at each precision: fit time, bank bytes,
#      the agreement check (max relative score difference, rank correlation, verdict flips on the
#      calibration images), image AUROC, verdicts on the test split that differ from fp32's,
#      predict ms per image;
#   3. the service's requests/s with 4 clients on the tile model of each precision (wrk, 20 s).
# A precision this CPU does not run natively is reported as refused. A set the agreement check
# refuses (on the demo's 37-image test splits, 0.005 of image AUROC is two swapped pairs) is
# trained again with --no-evaluation (the calibration check only) and evaluated with `patchvec
# eval`, so that its row is complete; the refusal is printed first.
#
#   bench/precision.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
python=/usr/bin/python3
patchvec=$(realpath "$build/patchvec")
work="$build/bench-data/precision"
threads=$(nproc)
mkdir -p "$work"
[ -d "$work/data/tile" ] || "$patchvec" -q synth --out "$work/data" --train 100 --seed 7 >/dev/null
fixtures="$build/tests/fixtures/patchcore"
[ -f "$fixtures/resnet18.safetensors" ] || (cd "$build" && ctest -R generate_patchcore_fixtures >/dev/null)

echo "== 1. the backbone"
"$build/bench/nn_bench" --benchmark_filter=BM_Precision --benchmark_format=json \
  >"$work/nn.json" 2>/dev/null
$python bench/precision_reference.py --threads "$threads" >"$work/torch.json"

echo "== 2. training and predicting at each precision"
for precision in fp32 bf16 int8; do
  for set in demo parity; do
    out="$work/$set-$precision"
    rm -rf "$out" "$out.json" "$out.err"
    if [ "$set" = demo ]; then
      data="$work/data"
      args=(--category tile,leather,grid)
    else
      data="$fixtures/data"
      args=(--category synthetic --backbone resnet18 --weights "$fixtures/resnet18.safetensors")
    fi
    start=$EPOCHREALTIME
    if "$patchvec" -q train --data "$data" "${args[@]}" --out "$out" --precision "$precision" \
      --json "$out.json" >/dev/null 2>"$out.err"; then
      echo "train_s=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')" \
        >"$out.time"
      for model in "$out"/*.pvm; do
        category=$(basename "$model" .pvm)
        "$patchvec" predict --json --model "$model" "$data/$category/test"/* \
          >"$out.$category.predict.json" 2>/dev/null || true
      done
    else
      echo "  $set $precision: $(tail -1 "$out.err")"
      rm -rf "$out"
      start=$EPOCHREALTIME
      "$patchvec" -q train --data "$data" "${args[@]}" --out "$out" --precision "$precision" \
        --no-evaluation --json "$out.json" >/dev/null 2>>"$out.err" || continue
      echo "train_s=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')" \
        >"$out.time"
      echo "refused_with_evaluation=1" >>"$out.time"
      for model in "$out"/*.pvm; do
        category=$(basename "$model" .pvm)
        "$patchvec" eval --model "$model" --data "$data" --json - \
          >"$out.$category.eval.json" 2>/dev/null || true
        "$patchvec" predict --json --model "$model" "$data/$category/test"/* \
          >"$out.$category.predict.json" 2>/dev/null || true
      done
    fi
  done
done

echo "== 3. the service, 4 clients, tile"
lua="$(cd "$(dirname "$0")" && pwd)/wrk_post.lua"
export PATCHVEC_WRK_IMAGE
PATCHVEC_WRK_IMAGE=$(realpath "$work/data/tile/test/good/000.png")
source "$(dirname "$0")/serving.sh"
for precision in fp32 bf16 int8; do
  [ -f "$work/demo-$precision/tile.pvm" ] || continue
  models="$work/serve-$precision"
  rm -rf "$models" && mkdir -p "$models" && cp "$work/demo-$precision/tile.pvm" "$models/"
  "$patchvec" -q index --model "$models/tile.pvm" --data "$work/data" >/dev/null 2>&1
  start_server "$patchvec" "$models" "$work/serve-$precision.log"
  sleep 2
  wrk -t2 -c4 -d20s --timeout 30s -s "$lua" "${url}v1/inspect?category=tile" | grep RESULT \
    >"$work/serve-$precision.txt" || true
  stop_server
done

$python - "$work" "$threads" <<'PY'
import json, re, sys, os
work, threads = sys.argv[1], sys.argv[2]
nn = {b["name"]: b for b in json.load(open(f"{work}/nn.json"))["benchmarks"]}
torch = json.load(open(f"{work}/torch.json"))
def ours(net, precision, batch):
    b = nn.get(f"BM_Precision/{net}_{precision}/{batch}/min_time:{3 if net != 'resnet18' else 2}.000/real_time")
    if b is None or b.get("error_occurred"):
        return None
    return b["real_time"] / batch
print(f"\nbackbone + patch features, ms per image, {threads} threads (lower is better)")
print(f"{'':17} {'batch':>5} {'pv fp32':>8} {'pv bf16':>8} {'pv int8':>8} {'torch fp32':>11} {'autocast bf16':>14}")
summary = {}
for net in ("wide_resnet50_2", "resnet18"):
    for batch in (1, 8):
        row = [ours(net, p, batch) for p in ("fp32", "bf16", "int8")]
        ref = [torch[f"{net}/fp32/{batch}"], torch[f"{net}/autocast_bf16/{batch}"]]
        cells = ["refused" if v is None else f"{v:.1f}" for v in row]
        print(f"{net:17} {batch:>5} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8} {ref[0]:>11.1f} {ref[1]:>14.1f}")
        summary[(net, batch)] = (row, ref)

def load(name):
    try:
        return json.load(open(f"{work}/{name}"))
    except (OSError, ValueError):
        return None
print("\ntrained and predicted at each precision (demo: 100 training images per category)")
print(f"{'set/category':18} {'prec':>5} {'train s':>8} {'bank MB':>8} {'AUROC':>7} {'d AUROC':>8} "
      f"{'max diff':>9} {'rank r':>7} {'flips':>6} {'test flips':>10} {'ms/img':>7}")
for set_ in ("demo", "parity"):
    base = {e["category"]: e for e in (load(f"{set_}-fp32.json") or [])}
    base_predictions = {}
    for precision in ("fp32", "bf16", "int8"):
        entries = load(f"{set_}-{precision}.json")
        if entries is None:
            err = open(f"{work}/{set_}-{precision}.err").read().strip().splitlines()
            print(f"{set_:18} {precision:>5} refused: {err[-1] if err else '?'}")
            continue
        timing = dict(l.split("=") for l in open(f"{work}/{set_}-{precision}.time").read().split())
        train_s = float(timing["train_s"])
        if "refused_with_evaluation" in timing:
            print(f"{set_:18} {precision:>5} (refused with evaluation; below: --no-evaluation, then eval)")
        for e in entries:
            cat = e["category"]
            model = f"{work}/{set_}-{precision}/{cat}.pvm"
            bank_mb = os.path.getsize(model) / 1e6
            pred = load(f"{set_}-{precision}.{cat}.predict.json") or {"predictions": [], "timings": {}}
            verdicts = [p["verdict"] for p in pred["predictions"]]
            if precision == "fp32":
                base_predictions[cat] = verdicts
            flips = sum(a != b for a, b in zip(verdicts, base_predictions.get(cat, verdicts)))
            a = e["fit"].get("agreement") or {}
            ms = pred["timings"].get("ms_per_image", {})
            total = sum(ms.get(k, 0) for k in ("read", "backbone", "search", "map"))
            auroc = e.get("image_auroc", float("nan"))
            evaluated = load(f"{set_}-{precision}.{cat}.eval.json")
            if evaluated is not None:
                auroc = evaluated.get("image_auroc", auroc)
            d = auroc - base[cat]["image_auroc"] if cat in base and "image_auroc" in base[cat] else float("nan")
            print(f"{set_ + '/' + cat:18} {precision:>5} {train_s / len(entries):8.1f} {bank_mb:8.1f} "
                  f"{auroc:7.3f} {d:+8.3f} {100 * a.get('max_relative_difference', 0):8.2f}% "
                  f"{a.get('rank_correlation', 1):7.4f} {a.get('verdict_flips', 0):>6} "
                  f"{flips:>4} of {len(verdicts):<3} {total:7.1f}")
print("\nservice, 4 clients, POST /v1/inspect (tile)")
rps = {}
for precision in ("fp32", "bf16", "int8"):
    try:
        line = open(f"{work}/serve-{precision}.txt").read()
    except OSError:
        continue
    v = dict(re.findall(r"(\w+)=([\d.]+)", line))
    rps[precision] = float(v.get("rps", 0))
    print(f"  {precision}: {float(v.get('rps', 0)):.2f} req/s, p50 {float(v.get('p50_ms', 0)):.0f} ms, "
          f"p99 {float(v.get('p99_ms', 0)):.0f} ms, errors {int(float(v.get('errors', 0)) + float(v.get('non2xx', 0)))}")
(row, ref) = summary[("wide_resnet50_2", 8)]
ratio = lambda v: "refused" if v is None else f"{v / row[0]:.2f}x"
print(f"\nsummary: wide_resnet50_2 batch 8: bf16 {ratio(row[1])}, int8 {ratio(row[2])} of fp32's "
      f"{row[0]:.1f} ms (PyTorch autocast bf16: {ref[1]:.1f} ms); service req/s "
      + ", ".join(f"{p} {r:.2f}" for p, r in rps.items()))
PY
