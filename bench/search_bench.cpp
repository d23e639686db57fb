// The nearest-neighbour search of a memory bank, searched whole against partitioned: the time to
// build each, ms per image (a batch of images' patches per call, as predict does) and whether
// the answers are the same. With --candidates, also the shortlist search (shortlist_search.h)
// against the whole one: its time, how often its nearest neighbour is the exact one (recall@1)
// and how far its distances are from the exact ones.
//
//   search_bench BANK.npy QUERIES.npy [--per-image 784] [--batch 8] [--cluster-size 64]
//                [--precision auto] [--threads 2] [--k 1] [--skip-whole]
//                [--candidates 0] [--components 128]
//
// BANK.npy: M x D float32 (a model's bank); QUERIES.npy: any float32 array whose last axis is D
// (`patchvec embed` of some images: N x H x W x D).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <patchvec/npy.h>
#include <patchvec/stopwatch.h>
#include <patchvec/system.h>

#include "search/exact_search.h"
#include "search/shortlist_search.h"

namespace {

at::Tensor matrix(pv::FloatArray& array) {
  const std::int64_t dim = array.shape.back();
  const auto rows = static_cast<std::int64_t>(array.values.size()) / dim;
  return at::from_blob(array.values.data(), {rows, dim}, at::kFloat);
}

const char* label(pv::search::Precision precision) {
  switch (precision) {
    case pv::search::Precision::kBFloat16:
      return "bf16";
    case pv::search::Precision::kInt16:
      return "int16";
    default:
      return "fp32";
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Float32 products go through OpenBLAS: its fast kernels, as `patchvec` itself chooses them.
  if (const std::string core = pv::better_blas_core(); !core.empty()) {
    ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
    ::execv("/proc/self/exe", argv);  // only returns on failure: carry on with the slow kernels
  }
  CLI::App app("A memory bank's search, whole against partitioned");
  std::string bank_path, queries_path, precision_name = "auto";
  std::int64_t per_image = 784, batch_images = 8, cluster_size = 64;
  int threads = 2, k = 1;
  bool skip_whole = false;
  std::int64_t candidates = 0, components = 128;
  app.add_option("bank", bank_path, "M x D float32 .npy")->required();
  app.add_option("queries", queries_path, "float32 .npy, last axis D")->required();
  app.add_option("--per-image", per_image, "Queries per image (its patches)")
      ->capture_default_str();
  app.add_option("--batch", batch_images, "Images per call")->capture_default_str();
  app.add_option("--cluster-size", cluster_size, "Vectors per cluster")->capture_default_str();
  app.add_option("--precision", precision_name, "First pass: auto, fp32, bf16 or int16")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "int16"}));
  app.add_option("--threads", threads, "Compute threads")->capture_default_str();
  app.add_option("--k", k, "Neighbours")->capture_default_str();
  app.add_flag("--skip-whole", skip_whole, "Time the partitioned search only (no comparison)");
  app.add_option("--candidates", candidates,
                 "Shortlist search: exact distances per query (0: not run)")
      ->capture_default_str();
  app.add_option("--components", components, "Shortlist search: principal components kept")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (candidates > 0 && skip_whole) {
    std::fprintf(stderr,
                 "search_bench: --candidates compares with the whole search: drop --skip-whole\n");
    return 2;
  }
  at::set_num_threads(threads);
  pv::FloatArray bank_array = pv::read_npy(bank_path);
  pv::FloatArray query_array = pv::read_npy(queries_path);
  const at::Tensor bank = matrix(bank_array);
  const at::Tensor queries = matrix(query_array);
  const auto precision = precision_name == "fp32"    ? pv::search::Precision::kFloat32
                         : precision_name == "bf16"  ? pv::search::Precision::kBFloat16
                         : precision_name == "int16" ? pv::search::Precision::kInt16
                                                     : pv::search::Precision::kAuto;
  pv::Stopwatch clock;
  const pv::search::ExactSearch whole(bank, {.precision = precision, .partition_min_size = 0});
  const double whole_build = clock.lap();
  const pv::search::ExactSearch parted(
      bank, {.precision = precision, .partition_min_size = 1, .cluster_size = cluster_size});
  const double parted_build = clock.lap();
  std::optional<pv::search::ShortlistSearch> shortlist;
  if (candidates > 0) {
    shortlist.emplace(
        bank, pv::search::ShortlistOptions{.components = components, .candidates = candidates});
  }
  const double shortlist_build = clock.lap();
  double shortlist_seconds = 0, worst_error = 0, error_sum = 0;
  std::int64_t found = 0, measured = 0;
  const std::int64_t per_call = per_image * batch_images;
  const std::int64_t calls = queries.size(0) / per_call;
  const std::int64_t images = calls * batch_images;
  double whole_seconds = 0, parted_seconds = 0;
  bool same = true;
  for (std::int64_t i = 0; i < calls; ++i) {
    const at::Tensor batch = queries.narrow(0, i * per_call, per_call);
    clock.lap();
    if (skip_whole) {
      parted.search(batch, k);
      parted_seconds += clock.lap();
      continue;
    }
    const pv::search::Neighbors a = whole.search(batch, k);
    whole_seconds += clock.lap();
    const pv::search::Neighbors b = parted.search(batch, k);
    parted_seconds += clock.lap();
    same = same && at::equal(a.indices, b.indices) && at::equal(a.distances, b.distances);
    if (!shortlist) continue;
    clock.lap();
    const pv::search::Neighbors c = shortlist->search(batch, k);
    shortlist_seconds += clock.lap();
    const at::Tensor nearest = a.distances.select(1, 0);
    found += (c.indices.select(1, 0) == a.indices.select(1, 0)).sum().item<std::int64_t>();
    const at::Tensor error =
        ((c.distances.select(1, 0) - nearest) / nearest.clamp_min(1e-12)).to(at::kDouble);
    worst_error = std::max(worst_error, error.max().item<double>());
    error_sum += error.sum().item<double>();
    measured += nearest.size(0);
  }
  std::printf(
      "bank %lld x %lld, %lld images of %lld queries (%lld a call), k %d, first pass %s (whole) / "
      "%s (partitioned), %lld clusters\n"
      "build: whole %.2f s, partitioned %.2f s\n"
      "search: whole %.1f ms/image, partitioned %.1f ms/image (%.2fx); answers %s\n",
      static_cast<long long>(bank.size(0)), static_cast<long long>(bank.size(1)),
      static_cast<long long>(images), static_cast<long long>(per_image),
      static_cast<long long>(batch_images), k, label(whole.precision()), label(parted.precision()),
      static_cast<long long>(parted.clusters()), whole_build, parted_build,
      1e3 * whole_seconds / static_cast<double>(images),
      1e3 * parted_seconds / static_cast<double>(images), whole_seconds / parted_seconds,
      skip_whole ? "not compared"
      : same     ? "identical"
                 : "DIFFERENT");
  if (shortlist) {
    std::printf(
        "shortlist (%lld components, %lld candidates): build %.2f s, %.1f ms/image (%.2fx whole); "
        "recall@1 %.5f (%lld of %lld), nearest distance relative error mean %.2e, max %.2e\n",
        static_cast<long long>(shortlist->components()),
        static_cast<long long>(shortlist->candidates()), shortlist_build,
        1e3 * shortlist_seconds / static_cast<double>(images), whole_seconds / shortlist_seconds,
        static_cast<double>(found) / static_cast<double>(std::max<std::int64_t>(measured, 1)),
        static_cast<long long>(found), static_cast<long long>(measured),
        error_sum / static_cast<double>(std::max<std::int64_t>(measured, 1)), worst_error);
  }
  return same ? 0 : 1;
}
