#!/usr/bin/env bash
# make bench: the micro-benchmarks, then the end-to-end comparisons with PyTorch.
set -euo pipefail
build=${1:-build}
"$build/bench/nn_bench" --benchmark_counters_tabular=true
bench/embed_vs_pytorch.sh "$build"
bench/patchcore_vs_pytorch.sh "$build"
bench/large_fit.sh "$build"
bench/large_fit.sh "$build" 1000 0.1 200 leather
bench/large_bank.sh "$build"
bench/coreset_contention.sh "$build"
bench/tiling.sh "$build"
bench/store_load.sh "$build"
bench/service_load.sh "$build"
bench/cluster_load.sh "$build"
bench/capacity.sh "$build"
