#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time and prints what each did.
#
#   scripts/fuzz.sh BUILD [SECONDS] [TARGET ...]     (make fuzz; FUZZ_SECONDS, default 60)
#
# Targets run FUZZ_JOBS at a time (default: one per core).
#
# BUILD is a build tree configured with -DPATCHVEC_FUZZ=ON (clang, ASan + UBSan). Corpora grow in
# BUILD/fuzz-corpus/<target> from one run to the next, seeded by fuzz_seeds (generated, never
# committed); a crash, sanitizer report, hang (10 s) or blow-up (4 GB; 1 GB for the targets that
# turn a few bytes into tensors: preprocess and checkpoint) is written to
# BUILD/fuzz-artifacts/ and makes the script fail. Reproduce one with
#   BUILD/fuzz/<target>_fuzz BUILD/fuzz-artifacts/<file>
set -euo pipefail

build=$(realpath "$1")
seconds=${2:-60}
shift $(($# > 1 ? 2 : 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] ||
  targets=(image preprocess safetensors model_file store_file http checkpoint pickle station)
source_dir=$(cd "$(dirname "$0")/.." && pwd)

seeds=$(mktemp -d "$build/fuzz-seeds.XXXXXX")
trap 'rm -rf "$seeds"' EXIT
artifacts="$build/fuzz-artifacts"
"$build/fuzz/fuzz_seeds" "$seeds"
mkdir -p "$artifacts"

# coverage: edges reached / edges instrumented (all of PatchVec linked into the target, not only
# the parser: the ratio understates how much of the parser is reached).
# One target for `seconds`; its table row goes to BUILD/fuzz-<target>.row, "failed" to .failed.
fuzz_target() {
  local target=$1
  local corpus="$build/fuzz-corpus/$target"
  local log="$build/fuzz-$target.log"
  mkdir -p "$corpus"
  rm -f "$build/fuzz-$target.failed"
  # Memory bombs are findings: the targets whose readers bound their allocations from the input's
  # fields get a limit near what their inputs may honestly need (libFuzzer's malloc limit follows).
  local rss=4096
  case "$target" in preprocess | checkpoint) rss=1024 ;; esac
  local options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb="$rss" -print_final_stats=1
                 -artifact_prefix="$artifacts/$target-")
  [ -f "$source_dir/fuzz/$target.dict" ] && options+=(-dict="$source_dir/fuzz/$target.dict")
  local result=clean
  if ! "$build/fuzz/${target}_fuzz" "${options[@]}" "$corpus" "$seeds/$target" >"$log" 2>&1; then
    result="FOUND: $(grep -m1 -E 'ERROR|SUMMARY|deadly signal|timeout' "$log" || echo "see $log")"
    touch "$build/fuzz-$target.failed"
  fi
  local runs rate reached edges files
  runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  reached=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  edges=$(grep -m1 -oE '[0-9]+ inline 8-bit counters' "$log" | awk '{print $1}')
  files=$(find "$corpus" -type f | wc -l)
  printf '%-12s %10s %8s %16s %8s  %s\n' "$target" "${runs:--}" "${rate:--}" \
    "${reached:--}/${edges:--}" "$files" "$result" >"$build/fuzz-$target.row"
}

# FUZZ_JOBS targets at once (default: one per core; each fuzzer is one process on one core), so
# that every target still gets `seconds` of a core and the whole run takes less.
jobs=${FUZZ_JOBS:-$(nproc)}
running=0
for target in "${targets[@]}"; do rm -f "$build/fuzz-$target.row"; done
for target in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_target "$target" &
  running=$((running + 1))
done
wait

# coverage: edges reached / edges instrumented (all of PatchVec linked into the target, not only
# the parser: the ratio understates how much of the parser is reached).
printf '%-12s %10s %8s %16s %8s  %s\n' target runs "runs/s" coverage corpus result
failed=()
for target in "${targets[@]}"; do
  cat "$build/fuzz-$target.row" 2>/dev/null || printf '%-12s  did not run\n' "$target"
  if [ -f "$build/fuzz-$target.failed" ] || [ ! -f "$build/fuzz-$target.row" ]; then
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]} (logs: $build/fuzz-<target>.log, inputs: $artifacts)" >&2
  exit 1
fi
