// Coreset selection on real patch embeddings, method against method: time, and the covering
// radius both in the projected space selection runs in and in the full embedding space (the
// largest distance from a training patch to its nearest selected patch).
//
//   coreset_bench EMBEDDINGS.npy [--images N] [--ratio R] [--method exact|fast|both]
//                 [--threads T] [--full-radius] [--continued]
//
// --continued: also the fast method as training cross-fits (every fifth image held out, its
// selection first, then the whole one continued from it): both radii and times.
//
// EMBEDDINGS.npy is `patchvec embed` of the training images (N x H x W x C float32).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <patchvec/npy.h>
#include <patchvec/stopwatch.h>
#include <patchvec/system.h>

#include "sampling/k_center_greedy.h"
#include "sampling/random_projection.h"
#include "search/exact_search.h"

namespace {

double full_radius(const at::Tensor& patches, const std::vector<std::int64_t>& indices) {
  const at::Tensor bank = patches.index_select(0, at::tensor(indices, at::kLong));
  const pv::search::ExactSearch search(bank);
  double worst = 0;
  constexpr std::int64_t kChunk = 8192;
  for (std::int64_t start = 0; start < patches.size(0); start += kChunk) {
    const auto rows = std::min(kChunk, patches.size(0) - start);
    worst = std::max(
        worst, search.search(patches.narrow(0, start, rows), 1).distances.max().item<double>());
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Coreset selection on real patch embeddings: fast against exact");
  std::string embeddings;
  std::int64_t images = 0;
  double ratio = 0.1;
  std::string method = "both";
  int threads = 2;
  bool full = false;
  bool continued = false;
  double dense_above = pv::sampling::KCenterOptions{}.dense_above;
  double freeze_below = pv::sampling::KCenterOptions{}.freeze_below;
  std::int64_t projection_dim = 0;
  app.add_option("embeddings", embeddings, "`patchvec embed` output (N x H x W x C float32 .npy)")
      ->required();
  app.add_option("--images", images, "Use the first N images (0: all)");
  app.add_option("--ratio", ratio, "Coreset ratio")->capture_default_str();
  app.add_option("--method", method, "exact, fast or both")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "fast", "both"}));
  app.add_option("--threads", threads, "Compute threads")->capture_default_str();
  app.add_option("--dense-above", dense_above,
                 "Fast method: rounds measured by matrix products above this fraction")
      ->capture_default_str();
  app.add_option("--freeze-below", freeze_below,
                 "Fast method: dense rounds skip points below this fraction of the floor (0: none)")
      ->capture_default_str();
  app.add_option("--projection-dim", projection_dim,
                 "Selection space (0: Johnson-Lindenstrauss at eps 0.9, as training)")
      ->capture_default_str();
  app.add_flag("--full-radius", full, "Also measure the covering radius in the full space");
  app.add_flag("--continued", continued,
               "Also the fast method continued from a selection without every fifth image");
  CLI11_PARSE(app, argc, argv);
  pv::switch_blas_core();  // as `patchvec` does at start (Debian's OpenBLAS mis-detects some CPUs)
  at::set_num_threads(threads);
  pv::Stopwatch clock;
  pv::FloatArray array = pv::read_npy(embeddings);
  const std::int64_t total_images = array.shape.at(0);
  const std::int64_t per_image = array.shape.at(1) * array.shape.at(2);
  const std::int64_t dim = array.shape.at(3);
  if (images <= 0 || images > total_images) images = total_images;
  const at::Tensor patches =
      at::from_blob(array.values.data(), {images * per_image, dim}, at::kFloat);
  const double read_seconds = clock.lap();

  const std::int64_t count = patches.size(0);
  const pv::sampling::RandomProjection projection(
      dim,
      std::min(projection_dim > 0 ? projection_dim : pv::sampling::johnson_lindenstrauss_dim(count),
               dim),
      0);
  at::Tensor projected = at::empty({count, projection.output_dim()}, at::kBFloat16);
  for (std::int64_t start = 0; start < count; start += 65536) {
    const auto rows = std::min<std::int64_t>(65536, count - start);
    projected.narrow(0, start, rows).copy_(projection.apply(patches.narrow(0, start, rows)));
  }
  const double project_seconds = clock.lap();
  const auto centres = std::max<std::int64_t>(1, static_cast<std::int64_t>(count * ratio));
  std::printf(
      "%lld images, %lld patches -> %lld centres, projected to %lld-d; read %.1f s, "
      "projection %.1f s, %d threads\n",
      static_cast<long long>(images), static_cast<long long>(count),
      static_cast<long long>(centres), static_cast<long long>(projection.output_dim()),
      read_seconds, project_seconds, threads);

  std::vector<std::string> methods;
  if (method == "both")
    methods = {"fast", "exact"};
  else
    methods = {method};
  double exact_full = 0, fast_full = 0;
  for (const auto& name : methods) {
    clock.lap();
    std::int64_t rounds = 0;  // progress is reported once per round
    const pv::sampling::KCenterOptions options{
        .centers = centres,
        .seed = 0,
        .method = name == "exact" ? pv::CoresetMethod::kExact : pv::CoresetMethod::kFast,
        .dense_above = dense_above,
        .freeze_below = freeze_below,
        .on_progress = [&](std::int64_t) { ++rounds; }};
    const pv::sampling::KCenterResult result = pv::sampling::k_center(projected, options);
    const double seconds = clock.lap();
    double radius = 0;
    if (full) {
      radius = full_radius(patches, result.indices);
      (name == "exact" ? exact_full : fast_full) = radius;
    }
    std::printf("%-5s selection %.1f s, covering radius %.4f projected", name.c_str(), seconds,
                result.covering_radius);
    std::printf(", %lld rounds (%lld dense), %.3g products (%.2f of points x centres)",
                static_cast<long long>(rounds), static_cast<long long>(result.dense_rounds),
                static_cast<double>(result.products),
                static_cast<double>(result.products) / static_cast<double>(count) /
                    static_cast<double>(centres));
    if (full) std::printf(", %.4f full (%.1f s)", radius, clock.lap());
    std::printf("\n");
    std::fflush(stdout);
  }
  if (continued) {
    std::vector<bool> held_out(static_cast<std::size_t>(count));
    std::int64_t kept = 0;
    for (std::int64_t i = 0; i < count; ++i) {
      held_out[i] = (i / per_image) % 5 == 0;
      kept += held_out[i] ? 0 : 1;
    }
    clock.lap();
    const auto result = pv::sampling::k_center_continued(
        projected, held_out, std::max<std::int64_t>(1, static_cast<std::int64_t>(kept * ratio)),
        {.centers = centres,
         .seed = 0,
         .method = pv::CoresetMethod::kFast,
         .dense_above = dense_above,
         .freeze_below = freeze_below});
    const double seconds = clock.lap();
    std::printf(
        "continued selection %.1f s (%.1f s without the held-out fifth), covering radius %.4f "
        "projected (%.4f before)",
        seconds, result.first_seconds, result.selection.covering_radius,
        result.first_covering_radius);
    if (full) {
      const double radius = full_radius(patches, result.selection.indices);
      std::printf(", %.4f full (%.1f s)", radius, clock.lap());
      if (fast_full > 0) std::printf("; continued/fast full radius %.4f", radius / fast_full);
    }
    std::printf("\n");
  }
  if (exact_full > 0 && fast_full > 0) {
    std::printf("fast/exact covering radius in the full space: %.4f\n", fast_full / exact_full);
  }
  return 0;
}
