// pv::Model's fitting: the memory bank from training images (with held-out scores for the
// thresholds), a bank given whole, and a bank grown by new good images.
#include <algorithm>
#include <cmath>
#include <optional>

#include <ATen/ATen.h>

#include <patchvec/error.h>
#include <patchvec/model.h>
#include <patchvec/stopwatch.h>
#include <patchvec/system.h>

#include "nn/torch_errors.h"
#include "patchcore/memory_bank.h"
#include "patchcore/model_impl.h"
#include "patchcore/model_info.h"
#include "sampling/random_projection.h"
#include "search/exact_search.h"
#include "util/clock.h"
#include "util/progress.h"

namespace pv {

using patchcore::append_image_embeddings;
using patchcore::effective;
using patchcore::image_map;

namespace {

// The held-out images the shortlist search is checked on against the exact one (each costs a
// full search: about 1.2 s against 60,000 fine-grained patches on AVX2).
constexpr std::int64_t kShortlistCheckImages = 8;

// One held-out image scored by the shortlist (`got`) and the exact search: added to `check`.
void compare_searches(const patchcore::Scores& got, const patchcore::Scores& want,
                      std::optional<ShortlistCheck>& check) {
  if (!check) check.emplace();
  const at::Tensor a = got.patch_distances.flatten().to(at::kDouble);
  const at::Tensor b = want.patch_distances.flatten().to(at::kDouble);
  const double found = (a == b).sum().item<double>();
  const double before = check->recall_at_1 * static_cast<double>(check->patches);
  check->patches += a.numel();
  check->recall_at_1 = (before + found) / static_cast<double>(check->patches);
  // NaN (a damaged bank's) never enters the record: it would not read back.
  const double error = at::nan_to_num((a - b) / b.clamp_min(1e-30), 0.0).max().item<double>();
  if (std::isfinite(error)) check->max_relative_error = std::max(check->max_relative_error, error);
  check->score_differences += at::equal(got.image_scores, want.image_scores) ? 0 : 1;
  ++check->images;
}

// Every training image scored by a bank fitted without it: the images in `folds` interleaved
// folds (image i in fold i mod folds), each fold's images scored by the coreset of the others'
// patches. What the thresholds from good images are set on (train/thresholds.cpp).
// `scored_folds`: how many of the folds are held out in turn (1: fold 0 only).
// `layout`: every image's tiles, or null without tiling.
// At a reduced precision (the embedder's) each held-out image is scored twice: its float32
// patches against the fold's float32 bank (FitReport::reference_scores), and its patches embedded
// again in that precision against the bank in bfloat16 (held_out_scores), as the model will.
void cross_fit(patchcore::MemoryBankBuilder& builder, const Embedder& embedder,
               std::span<const std::filesystem::path> images, const TileLayout* layout,
               std::size_t folds, std::size_t scored_folds, const PatchCoreOptions& options,
               const search::SearchOptions& search_options, FitReport& report) {
  const GridShape grid = embedder.grid();
  const auto inputs = layout != nullptr ? static_cast<std::int64_t>(layout->count()) : 1;
  const std::int64_t per_image = inputs * grid.height * grid.width;
  const int output =
      options.embedder.crop_size > 0 ? options.embedder.crop_size : options.embedder.image_size;
  const patchcore::AnomalyMapOptions map_options{
      .size = output, .sigma = options.sigma, .upsampling = options.upsampling};
  const bool reduced = embedder.precision() != Precision::kFloat32;
  const auto score = [&](const patchcore::Scorer& scorer, const at::Tensor& patches,
                         std::vector<float>& scores_out, std::vector<float>& maxima_out) {
    patchcore::Scores scores = scorer.score(patches);
    scores_out.push_back(scores.image_scores.max().item<float>());
    maxima_out.push_back(
        image_map(scores.patch_distances, layout, map_options).max().item<float>());
    return scores;
  };
  for (std::size_t fold = 0; fold < scored_folds; ++fold) {
    std::vector<bool> held_out(images.size());
    std::vector<std::filesystem::path> fold_images;
    for (std::size_t i = fold; i < images.size(); i += folds) {
      held_out[i] = true;
      fold_images.push_back(images[i]);
    }
    const std::string label =
        "calibration " + std::to_string(fold + 1) + "/" + std::to_string(scored_folds);
    const at::Tensor bank = builder.coreset_without(held_out, per_image, label);
    const patchcore::Scorer scorer(bank, {.num_neighbors = options.num_neighbors,
                                          .method = options.search,
                                          .search = search_options});
    // Against a large bank the held-out images' search is much of a fit's time (AVX2: ~1 s an
    // image against 60,000 fine-grained patches).
    std::optional<patchcore::Scorer> exact;  // the shortlist's check, built when needed
    ProgressBar progress(label + " scores", fold_images.size());
    for (std::size_t i = fold; i < images.size(); i += folds) {
      const at::Tensor patches = builder.rows(static_cast<std::int64_t>(i) * per_image, per_image)
                                     .reshape({inputs, grid.height, grid.width, grid.dim});
      report.held_out_images.push_back(i);
      const patchcore::Scores scores =
          score(scorer, patches, reduced ? report.reference_scores : report.held_out_scores,
                reduced ? report.reference_map_maxima : report.held_out_map_maxima);
      if (fold == 0 && scorer.method() == SearchMethod::kShortlist &&
          (!report.shortlist_check || report.shortlist_check->images < kShortlistCheckImages)) {
        if (!exact) {
          // The whole product, unpartitioned: partitioning costs ~5 s for 60,000 patches, more
          // than it can save on a few images (none on fine-grained ones, whose bounds prune
          // little: exact_search.h).
          search::SearchOptions whole = search_options;
          whole.partition_min_size = 0;
          exact.emplace(bank, patchcore::ScorerOptions{.num_neighbors = options.num_neighbors,
                                                       .method = SearchMethod::kExact,
                                                       .search = whole});
        }
        compare_searches(scores, exact->score(patches), report.shortlist_check);
      }
      progress.advance();
    }
    progress.finish();
    if (!reduced) continue;
    const patchcore::Scorer half(bank.to(at::kBFloat16), {.num_neighbors = options.num_neighbors,
                                                          .method = options.search,
                                                          .search = search_options});
    embedder.embed_each(
        fold_images,
        [&](const PatchEmbeddings& batch, std::span<const std::size_t>) {
          const std::vector<std::int64_t> first = patchcore::input_offsets(batch);
          for (std::size_t k = 0; k + 1 < first.size(); ++k) {
            const std::span<const float> values =
                patchcore::input_patches(batch, first[k], first[k + 1]);
            const at::Tensor patches = at::from_blob(
                const_cast<float*>(values.data()),
                {first[k + 1] - first[k], grid.height, grid.width, grid.dim}, at::kFloat);
            score(half, patches, report.held_out_scores, report.held_out_map_maxima);
          }
        },
        label + " " + precision_name(embedder.precision()));
  }
}

// With tiling, the one layout of every training image: they must share a size, so that each
// gives as many patches (the bank's builder counts them before embedding). Reads the headers.
TileLayout common_layout(std::span<const std::filesystem::path> images,
                         const TilingOptions& tiling) {
  const ImageHeader first = read_image_header(images.front());
  for (const auto& path : images.subspan(1)) {
    const ImageHeader header = read_image_header(path);
    if (header.width != first.width || header.height != first.height) {
      throw Error("training image " + path.string() + " is " + std::to_string(header.width) + "x" +
                  std::to_string(header.height) + ", but " + images.front().string() + " is " +
                  std::to_string(first.width) + "x" + std::to_string(first.height) +
                  ": with --tile, the training images of a category must have one size");
    }
  }
  try {
    return tile_layout(first.width, first.height, tiling);
  } catch (const Error& e) {
    throw Error("training image " + images.front().string() + ": " + e.what());
  }
}

}  // namespace

Model Model::fit(std::span<const std::filesystem::path> images, std::string category,
                 const PatchCoreOptions& options, FitReport* report,
                 std::vector<std::vector<float>>* image_embeddings) {
  return nn::torch_errors_as_pv("training " + category + ": ", [&] {
    return fit_impl(images, std::move(category), options, report, image_embeddings);
  });
}

Model Model::fit_impl(std::span<const std::filesystem::path> images, std::string category,
                      const PatchCoreOptions& requested, FitReport* report,
                      std::vector<std::vector<float>>* image_embeddings) {
  if (images.empty()) throw Error("training needs at least one image");
  check_category_name(category);
  const PatchCoreOptions options = effective(requested);
  std::optional<TileLayout> layout;
  if (options.embedder.tiling.enabled()) layout = common_layout(images, options.embedder.tiling);
  if (!(options.sigma > 0) ||
      options.sigma > patchcore::max_sigma(options.embedder.crop_size > 0
                                               ? options.embedder.crop_size
                                               : options.embedder.image_size)) {
    throw Error("the anomaly map blur sigma " + std::to_string(options.sigma) +
                " does not fit the image size");
  }
  require_precision(options.precision, "--precision");
  Stopwatch total;
  FitReport local;
  EmbedderOptions embedder_options = options.embedder;
  embedder_options.seed = options.seed;  // one seed per fit (PatchCoreOptions::seed)
  Embedder embedder(embedder_options);
  const std::size_t folds = options.calibration_folds > 1
                                ? std::min<std::size_t>(options.calibration_folds, images.size())
                                : 0;
  const bool random_backbone = !embedder.ready();
  // Held-out images must not shape the BatchNorm statistics either (see calibration_folds), nor
  // int8's activation ranges.
  std::vector<std::filesystem::path> seen;
  for (std::size_t i = 0; i < images.size(); ++i) {
    if (!random_backbone || folds < 2 || i % folds != 0) seen.push_back(images[i]);
  }
  if (random_backbone) {
    Stopwatch clock;
    embedder.calibrate(seen);
    local.batchnorm_seconds = clock.lap();
  }
  const GridShape grid = embedder.grid();
  const std::int64_t inputs = layout ? static_cast<std::int64_t>(layout->count()) : 1;
  const std::int64_t patches =
      static_cast<std::int64_t>(images.size()) * inputs * grid.height * grid.width;
  patchcore::MemoryBankBuilder builder(patches, grid.dim,
                                       {.coreset_ratio = options.coreset_ratio,
                                        .method = options.coreset,
                                        .projection_dim = options.projection_dim,
                                        .seed = options.seed,
                                        .max_memory_bytes = options.max_memory_bytes});
  Stopwatch clock;
  if (image_embeddings != nullptr) image_embeddings->clear();
  embedder.embed_each(images, [&](const PatchEmbeddings& batch, std::span<const std::size_t>) {
    builder.add(batch.values);
    if (image_embeddings != nullptr) append_image_embeddings(batch, *image_embeddings);
  });
  local.embed_seconds = clock.lap();
  // The bank comes from float32 embeddings; from here on the backbone runs in its precision.
  embedder.set_precision(options.precision, seen);
  search::SearchOptions search_options;
  if (options.max_memory_bytes > 0) search_options.max_block_bytes = options.max_memory_bytes / 16;
  if (folds > 1) {
    // Folds of image i mod folds: the first k of them hold out at least k * floor(n / folds).
    const std::size_t fold_size = images.size() / folds;
    const std::size_t wanted = std::max<std::size_t>(options.calibration_images, 1);
    const std::size_t scored =
        random_backbone ? 1 : std::min(folds, (wanted + fold_size - 1) / fold_size);
    cross_fit(builder, embedder, images, layout ? &*layout : nullptr, folds, scored, options,
              search_options, local);
    local.calibration_seconds = clock.lap();
  }
  patchcore::BankReport bank_report;
  const at::Tensor fp32_bank = builder.finish(&bank_report);
  const at::Tensor bank =
      options.precision != Precision::kFloat32 ? fp32_bank.to(at::kBFloat16) : fp32_bank;
  local.project_seconds = bank_report.project_seconds;
  local.coreset_seconds = bank_report.coreset_seconds;
  local.calibration_seconds -= bank_report.coreset_seconds_before;  // counted once, as coreset
  local.spilled = bank_report.spilled;

  patchcore::Scorer scorer(
      bank,
      {.num_neighbors = options.num_neighbors, .method = options.search, .search = search_options});

  ModelInfo info;
  info.category = std::move(category);
  info.created = utc_now();
  info.pretrained = embedder.pretrained();
  // What shaped the model (ModelInfo::options), without the run-time settings.
  info.options = options;
  info.options.embedder = {.image_size = options.embedder.image_size,
                           .crop_size = options.embedder.crop_size,
                           .tiling = options.embedder.tiling};
  patchcore::set_backbone(info, embedder.state());
  info.options.max_memory_bytes = 0;
  info.options.search = SearchMethod::kAuto;
  info.options.calibration_folds = 0;
  info.grid = grid;
  info.bank_size = bank.size(0);
  info.train_images = static_cast<std::int64_t>(images.size());
  info.train_patches = patches;
  info.options.projection_dim = bank_report.projection_dim;
  info.covering_radius = bank_report.covering_radius;
  info.shortlist_check = local.shortlist_check;
  local.total_seconds = total.total();
  local.peak_memory_bytes = peak_memory_bytes();
  if (report != nullptr) *report = local;
  auto impl = std::make_unique<Impl>(std::move(info), std::move(embedder), std::move(scorer));
  if (options.precision != Precision::kFloat32) impl->fp32_bank = fp32_bank;
  return Model(std::move(impl));
}

Model Model::from_bank(Embedder embedder, std::span<const float> bank, ModelInfo info) {
  return nn::torch_errors_as_pv("the " + info.category + " model: ", [&] {
    const GridShape grid = embedder.grid();
    if (info.bank_size <= 0 || bank.size() != static_cast<std::size_t>(info.bank_size) *
                                                  static_cast<std::size_t>(grid.dim)) {
      throw Error("a memory bank of " + std::to_string(bank.size()) + " floats is not " +
                  std::to_string(info.bank_size) + " patches of " + std::to_string(grid.dim));
    }
    if (!std::all_of(bank.begin(), bank.end(), [](float v) { return std::isfinite(v); })) {
      throw Error("the memory bank holds NaN or infinite values");
    }
    info.grid = grid;
    info.options.embedder.image_size = embedder.options().image_size;
    info.options.embedder.crop_size = embedder.options().crop_size;
    info.pretrained = embedder.pretrained();
    BackboneState state = embedder.state(/*carry_weights=*/info.pretrained);
    state.tensors.clear();  // regenerated by save()
    patchcore::set_backbone(info, std::move(state));
    const at::Tensor vectors =
        at::from_blob(const_cast<float*>(bank.data()), {info.bank_size, grid.dim}, at::kFloat)
            .clone();
    patchcore::Scorer scorer(vectors, {.num_neighbors = info.options.num_neighbors});
    return Model(std::make_unique<Impl>(std::move(info), std::move(embedder), std::move(scorer)));
  });
}

UpdateReport Model::add_normal_images(std::span<const std::filesystem::path> images) {
  return nn::torch_errors_as_pv("updating the " + impl_->info.category + " model: ", [&] {
    Stopwatch clock;
    ModelInfo& info = impl_->info;
    UpdateReport report{.images = static_cast<std::int64_t>(images.size()),
                        .covering_radius_before = info.covering_radius,
                        .covering_radius_after = info.covering_radius};
    if (images.empty()) return report;
    const PatchEmbeddings embedded = impl_->embedder.embed(images, "embed new images");
    const auto& g = embedded.grid;
    const at::Tensor patches =
        at::from_blob(const_cast<float*>(embedded.values.data()),
                      {embedded.count * g.height * g.width, g.dim}, at::kFloat)
            .clone();
    report.patches = patches.size(0);
    const at::Tensor bank = impl_->scorer.bank().to(at::kFloat);
    std::vector<std::int64_t> keep;
    if (info.options.projection_dim > 0) {
      // The selection's space: the same seeded projection as at fit time.
      const sampling::RandomProjection projection(g.dim, info.options.projection_dim,
                                                  info.options.seed);
      const at::Tensor points = projection.apply(patches);
      const search::ExactSearch centres(projection.apply(bank));
      at::Tensor distance = centres.search(points, 1).distances.squeeze(1).contiguous();
      const double radius = info.covering_radius;
      for (;;) {
        const std::int64_t farthest = distance.argmax().item<std::int64_t>();
        if (distance[farthest].item<float>() <= radius) break;
        keep.push_back(farthest);
        distance = at::minimum(distance, (points - points[farthest]).pow(2).sum(1).sqrt());
      }
      report.covering_radius_after = std::max(radius, distance.max().item<double>());
    } else {  // the bank is every patch (coreset ratio 1): all of them join it
      for (std::int64_t i = 0; i < patches.size(0); ++i) keep.push_back(i);
    }
    report.centres_added = static_cast<std::int64_t>(keep.size());
    const at::Tensor grown =
        (keep.empty() ? bank
                      : at::cat({bank, patches.index_select(0, at::tensor(keep, at::kLong))}))
            .to(impl_->scorer.bank().scalar_type());
    patchcore::Scorer scorer(
        grown, {.num_neighbors = info.options.num_neighbors, .method = impl_->scorer.method()});
    // Nothing above changed the model; from here on nothing can fail.
    impl_->scorer = std::move(scorer);
    impl_->fp32_bank = at::Tensor();
    info.bank_size = grown.size(0);
    info.train_images += report.images;
    info.train_patches += report.patches;
    info.covering_radius = report.covering_radius_after;
    ++info.revision;
    report.seconds = clock.total();
    return report;
  });
}

}  // namespace pv
