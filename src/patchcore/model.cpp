// pv::Model: PatchCore assembled from the embedder, the memory bank, the scorer and the map.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

#include <ATen/ATen.h>

#include <patchvec/error.h>
#include <patchvec/model.h>
#include <patchvec/stopwatch.h>
#include <patchvec/system.h>
#include <patchvec/weights.h>

#include "nn/torch_errors.h"
#include "patchcore/anomaly_map.h"
#include "patchcore/memory_bank.h"
#include "patchcore/model_file.h"
#include "patchcore/model_info.h"
#include "patchcore/scorer.h"
#include "sampling/random_projection.h"
#include "search/exact_search.h"
#include "util/clock.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace pv {
namespace {

// A pretrained backbone without a weights file: the model file carries its tensors.
bool carries_weights(const ModelInfo& info) {
  return info.pretrained && info.backbone.weights.empty();
}

}  // namespace

AnomalyMap map_on_original(const AnomalyMap& map, int image_size, int crop_size, int width,
                           int height) {
  if (width < 1 || height < 1 || map.values.empty()) throw Error("map_on_original: empty image");
  // The crop is the same fraction of each side of the original as of the resized image.
  const int crop = crop_size > 0 ? crop_size : image_size;
  const double offset = std::nearbyint((image_size - crop) / 2.0) / image_size;
  const double extent = static_cast<double>(crop) / image_size;
  const auto x0 = static_cast<std::int64_t>(std::lround(offset * width));
  const auto y0 = static_cast<std::int64_t>(std::lround(offset * height));
  const auto w =
      std::max<std::int64_t>(1, std::min<std::int64_t>(width - x0, std::lround(extent * width)));
  const auto h =
      std::max<std::int64_t>(1, std::min<std::int64_t>(height - y0, std::lround(extent * height)));
  const at::Tensor source = at::from_blob(const_cast<float*>(map.values.data()),
                                          {1, 1, map.height, map.width}, at::kFloat);
  const at::Tensor region =
      at::upsample_bilinear2d(source, {h, w}, /*align_corners=*/false).squeeze().contiguous();
  AnomalyMap out{.width = width, .height = height};
  out.values.assign(static_cast<std::size_t>(width) * height,
                    std::numeric_limits<float>::quiet_NaN());
  const float* values = region.data_ptr<float>();
  for (std::int64_t y = 0; y < h; ++y) {
    std::copy(values + y * w, values + (y + 1) * w,
              out.values.begin() + static_cast<std::ptrdiff_t>((y0 + y) * width + x0));
  }
  return out;
}

float normalize_score(float score, float threshold, float min, float max) {
  const float range = max - min;
  const float value = (score - threshold) / (range > 0 ? range : 1.0f) + 0.5f;
  return std::clamp(value, 0.0f, 1.0f);
}

namespace {

// Where each image of a batch lies among its network inputs: image k is inputs
// [first[k], first[k + 1]) (one input each without tiling, its tiles with it).
std::vector<std::int64_t> input_offsets(const PatchEmbeddings& batch) {
  std::vector<std::int64_t> first{0};
  if (batch.layouts.empty()) {
    for (std::int64_t b = 0; b < batch.count; ++b) first.push_back(b + 1);
  } else {
    for (const TileLayout& layout : batch.layouts) {
      first.push_back(first.back() + static_cast<std::int64_t>(layout.count()));
    }
  }
  return first;
}

// The patch embeddings of inputs [begin, end) of a batch.
std::span<const float> input_patches(const PatchEmbeddings& batch, std::int64_t begin,
                                     std::int64_t end) {
  const auto per_input =
      static_cast<std::size_t>(batch.grid.height * batch.grid.width * batch.grid.dim);
  return std::span(batch.values)
      .subspan(static_cast<std::size_t>(begin) * per_input,
               static_cast<std::size_t>(end - begin) * per_input);
}

void append_image_embeddings(const PatchEmbeddings& batch, std::vector<std::vector<float>>& out) {
  const std::vector<std::int64_t> first = input_offsets(batch);
  for (std::size_t k = 0; k + 1 < first.size(); ++k) {
    out.push_back(image_embedding(input_patches(batch, first[k], first[k + 1]),
                                  static_cast<std::size_t>(batch.grid.dim)));
  }
}

// With tiling, the tile is the network input whole, so the preprocessing sizes read as (tile,
// no crop) everywhere (the model file, pictures).
void use_tiling(EmbedderOptions& embedder, const TilingOptions& tiling) {
  validate(tiling);
  embedder.tiling = tiling;
  embedder.image_size = tiling.size;
  embedder.crop_size = 0;
}

// The options a fit works with.
PatchCoreOptions effective(PatchCoreOptions options) {
  if (options.embedder.tiling.enabled()) use_tiling(options.embedder, options.embedder.tiling);
  return options;
}

// One image's map: the anomaly map of its single input, or its tiles' stitched map.
at::Tensor image_map(const at::Tensor& patch_distances, const TileLayout* layout,
                     const patchcore::AnomalyMapOptions& options) {
  return layout != nullptr ? patchcore::tiled_anomaly_map(patch_distances, *layout, options)
                           : patchcore::anomaly_maps(patch_distances, options)[0];
}

}  // namespace

struct Model::Impl {
  ModelInfo info;
  std::shared_ptr<const Embedder> backbone;  // shared with other models (BackboneCache)
  const Embedder& embedder;                  // *backbone
  patchcore::Scorer scorer;

  Impl(ModelInfo model_info, std::shared_ptr<const Embedder> shared, patchcore::Scorer bank_scorer)
      : info(std::move(model_info)),
        backbone(std::move(shared)),
        embedder(*backbone),
        scorer(std::move(bank_scorer)) {}
  Impl(ModelInfo model_info, Embedder own, patchcore::Scorer bank_scorer)
      : Impl(std::move(model_info), std::make_shared<const Embedder>(std::move(own)),
             std::move(bank_scorer)) {}

  patchcore::AnomalyMapOptions map_options() const {
    return {.size = info.options.embedder.crop_size > 0 ? info.options.embedder.crop_size
                                                        : info.options.embedder.image_size,
            .sigma = info.options.sigma,
            .upsampling = info.options.upsampling};
  }

  float normalize_image(float score) const {
    if (!info.thresholds) return std::numeric_limits<float>::quiet_NaN();
    const Thresholds& t = *info.thresholds;
    return normalize_score(score, t.image, t.image_min, t.image_max);
  }

  // Scores one batch of embeddings into predictions[indices[k]], k the batch's k-th image.
  void score(const PatchEmbeddings& batch, std::span<const std::size_t> indices,
             std::vector<Prediction>& out, PredictTimings* timings) const {
    Stopwatch clock;
    const auto& g = batch.grid;
    const at::Tensor embeddings =
        at::from_blob(const_cast<float*>(batch.values.data()),
                      {batch.count, g.height, g.width, g.dim}, at::kFloat);
    const patchcore::Scores scores = scorer.score(embeddings);
    double search = clock.lap();
    double map = 0;
    const std::vector<std::int64_t> first = input_offsets(batch);
    for (std::size_t k = 0; k + 1 < first.size(); ++k) {
      const std::int64_t begin = first[k], inputs = first[k + 1] - first[k];
      Prediction& p = out[indices[k]];
      // With tiling, the image's score is its highest tile's (each re-weighted as usual).
      p.score = scores.image_scores.narrow(0, begin, inputs).max().item<float>();
      if (!std::isfinite(p.score)) {
        throw Error("model of " + info.category +
                    " gave a non-finite score: its bank or backbone is damaged");
      }
      p.normalized = normalize_image(p.score);
      p.verdict =
          info.thresholds ? verdict_of(p.score >= info.thresholds->image) : Verdict::kUnknown;
      const at::Tensor distances = scores.patch_distances.narrow(0, begin, inputs).contiguous();
      search += clock.lap();
      const at::Tensor values =
          image_map(distances, batch.layouts.empty() ? nullptr : &batch.layouts[k], map_options())
              .contiguous();
      map += clock.lap();
      p.map.height = static_cast<int>(values.size(0));
      p.map.width = static_cast<int>(values.size(1));
      p.map.values.assign(values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
      p.patch_distances.assign(distances.data_ptr<float>(),
                               distances.data_ptr<float>() + distances.numel());
      const std::span<const float> patches = input_patches(batch, begin, first[k + 1]);
      p.embedding = image_embedding(patches, static_cast<std::size_t>(g.dim));
      p.defect_embedding =
          defect_embedding(patches, static_cast<std::size_t>(g.dim), p.patch_distances);
      clock.lap();
    }
    if (timings != nullptr) {
      timings->search_seconds += search;
      timings->map_seconds += map;
    }
  }
};

namespace {

// Every training image scored by a bank fitted without it: the images in `folds` interleaved
// folds (image i in fold i mod folds), each fold's images scored by the coreset of the others'
// patches. What the thresholds from good images are set on (train/thresholds.cpp).
// `scored_folds`: how many of the folds are held out in turn (1: fold 0 only).
// `layout`: every image's tiles, or null without tiling.
void cross_fit(patchcore::MemoryBankBuilder& builder, const GridShape& grid, std::size_t images,
               const TileLayout* layout, std::size_t folds, std::size_t scored_folds,
               const PatchCoreOptions& options, const search::SearchOptions& search_options,
               FitReport& report) {
  const auto inputs = layout != nullptr ? static_cast<std::int64_t>(layout->count()) : 1;
  const std::int64_t per_image = inputs * grid.height * grid.width;
  const int output =
      options.embedder.crop_size > 0 ? options.embedder.crop_size : options.embedder.image_size;
  for (std::size_t fold = 0; fold < scored_folds; ++fold) {
    std::vector<bool> held_out(images);
    for (std::size_t i = fold; i < images; i += folds) held_out[i] = true;
    const at::Tensor bank = builder.coreset_without(
        held_out, per_image,
        "calibration " + std::to_string(fold + 1) + "/" + std::to_string(scored_folds));
    const patchcore::Scorer scorer(
        bank, {.num_neighbors = options.num_neighbors, .search = search_options});
    for (std::size_t i = fold; i < images; i += folds) {
      const at::Tensor patches = builder.rows(static_cast<std::int64_t>(i) * per_image, per_image)
                                     .reshape({inputs, grid.height, grid.width, grid.dim});
      const patchcore::Scores scores = scorer.score(patches);
      const at::Tensor map =
          image_map(scores.patch_distances, layout,
                    {.size = output, .sigma = options.sigma, .upsampling = options.upsampling});
      report.held_out_images.push_back(i);
      report.held_out_scores.push_back(scores.image_scores.max().item<float>());
      report.held_out_map_maxima.push_back(map.max().item<float>());
    }
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

// Applies ModelLoadOptions::tiling to a loaded model's record.
void override_tiling(ModelInfo& info, const TilingOverride& change) {
  TilingOptions tiling = info.options.embedder.tiling;
  if (change.size) tiling.size = *change.size;
  if (!tiling.enabled()) {
    if (change.overlap || change.scale) {
      throw Error(
          "--tile-overlap and --tile-scale need --tile: the model was trained without tiles");
    }
    if (info.options.embedder.tiling.enabled()) {
      throw Error("was trained with " + describe(info.options.embedder.tiling) +
                  "; --tile 0 cannot turn them off (it has no image size to resize to)");
    }
    return;
  }
  if (change.overlap) tiling.overlap = *change.overlap;
  if (change.scale) tiling.scale = *change.scale;
  use_tiling(info.options.embedder, tiling);
}

}  // namespace

struct BackboneCache::Impl {
  std::mutex mutex;
  std::map<std::string, std::weak_ptr<const Embedder>> backbones;

  // The embedder `state` and `runtime` describe: one alive already, or a new one from `restore`.
  template <typename Restore>
  std::shared_ptr<const Embedder> find_or_add(const BackboneState& state,
                                              const EmbedderOptions& runtime,
                                              const Restore& restore) {
    const TilingOptions& t = runtime.tiling;
    const std::string key = state.backbone + "/" + state.weights_sha256 + "/" +
                            sha256_hex(state.batchnorm) + "/" + std::to_string(runtime.image_size) +
                            "/" + std::to_string(runtime.crop_size) + "/" + std::to_string(t.size) +
                            "/" + std::to_string(t.overlap) + "/" + std::to_string(t.scale) + "/" +
                            std::to_string(runtime.batch_size) + "/" +
                            std::to_string(runtime.image_limits.max_pixels);
    const std::lock_guard lock(mutex);
    if (auto alive = backbones[key].lock()) return alive;
    auto made = std::make_shared<const Embedder>(restore());
    backbones[key] = made;
    return made;
  }
};

BackboneCache::BackboneCache() : impl_(std::make_unique<Impl>()) {}
BackboneCache::~BackboneCache() = default;

std::size_t BackboneCache::size() const {
  const std::lock_guard lock(impl_->mutex);
  return static_cast<std::size_t>(
      std::count_if(impl_->backbones.begin(), impl_->backbones.end(),
                    [](const auto& entry) { return !entry.second.expired(); }));
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

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
  Stopwatch total;
  FitReport local;
  EmbedderOptions embedder_options = options.embedder;
  embedder_options.seed = options.seed;  // one seed per fit (PatchCoreOptions::seed)
  Embedder embedder(embedder_options);
  const std::size_t folds = options.calibration_folds > 1
                                ? std::min<std::size_t>(options.calibration_folds, images.size())
                                : 0;
  const bool random_backbone = !embedder.ready();
  if (random_backbone) {
    Stopwatch clock;
    // Held-out images must not shape the BatchNorm statistics either (see calibration_folds).
    std::vector<std::filesystem::path> seen;
    for (std::size_t i = 0; i < images.size(); ++i) {
      if (folds < 2 || i % folds != 0) seen.push_back(images[i]);
    }
    embedder.calibrate(seen);
    local.calibrate_seconds = clock.lap();
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
  search::SearchOptions search_options;
  if (options.max_memory_bytes > 0) search_options.max_block_bytes = options.max_memory_bytes / 16;
  if (folds > 1) {
    cross_fit(builder, grid, images.size(), layout ? &*layout : nullptr, folds,
              random_backbone ? 1 : folds, options, search_options, local);
    local.calibration_seconds = clock.lap();
  }
  patchcore::BankReport bank_report;
  const at::Tensor bank = builder.finish(&bank_report);
  local.project_seconds = bank_report.project_seconds;
  local.coreset_seconds = bank_report.coreset_seconds;
  local.spilled = bank_report.spilled;

  patchcore::Scorer scorer(bank,
                           {.num_neighbors = options.num_neighbors, .search = search_options});

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
  info.options.calibration_folds = 0;
  info.grid = grid;
  info.bank_size = bank.size(0);
  info.train_images = static_cast<std::int64_t>(images.size());
  info.train_patches = patches;
  info.options.projection_dim = bank_report.projection_dim;
  info.covering_radius = bank_report.covering_radius;
  local.total_seconds = total.total();
  local.peak_memory_bytes = peak_memory_bytes();
  if (report != nullptr) *report = local;
  return Model(std::make_unique<Impl>(std::move(info), std::move(embedder), std::move(scorer)));
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

void Model::save(const std::filesystem::path& path) const {
  const ModelInfo& info = impl_->info;
  const patchcore::ModelFileContents contents{.metadata = patchcore::to_json(info),
                                              .bank = impl_->scorer.bank(),
                                              .batchnorm = info.backbone.batchnorm,
                                              .backbone = carries_weights(info)
                                                              ? impl_->embedder.state(true).tensors
                                                              : std::vector<std::byte>()};
  // What load() will check, checked before writing: a model made from outside data (an imported
  // checkpoint's bank or threshold) that would not load is never written.
  try {
    patchcore::check_contents(patchcore::model_info_from(contents.metadata), contents);
    patchcore::check_bank_values(contents.bank, "");
  } catch (const nlohmann::json::exception& e) {
    throw Error("model file " + path.string() + " not written: its metadata would not read back (" +
                e.what() + ")");
  } catch (const Error& e) {
    throw Error("model file " + path.string() + " not written: it would not load (" + e.what() +
                ")");
  }
  patchcore::write_model_file(path, contents);
}

Model Model::load(const std::filesystem::path& path, const ModelLoadOptions& options) {
  const std::string where = "model file " + path.string() + ": ";
  return nn::torch_errors_as_pv(where, [&] {
    patchcore::ModelFileContents contents = patchcore::read_model_file(path);
    ModelInfo info;
    try {
      info = patchcore::model_info_from(contents.metadata);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + "corrupt metadata (" + e.what() + ")");
    } catch (const Error& e) {
      throw Error(where + e.what());
    }
    try {
      patchcore::check_contents(info, contents);
    } catch (const Error& e) {
      throw Error(where + e.what());
    }
    info.backbone.batchnorm = std::move(contents.batchnorm);
    BackboneState state = info.backbone;
    // Carried weights live in the embedder only; save() asks it for them again.
    state.tensors = std::move(contents.backbone);
    if (!options.weights.empty() && !state.tensors.empty()) {
      throw Error(where + "carries its backbone's weights; --weights does not apply to it");
    }
    if (!options.weights.empty()) {
      // The user's --weights (a file, URL or name) resolves to a file here; the model's own
      // record is always a file and never downloads anything.
      try {
        state.weights = resolve_weights(options.weights.string(), state.backbone);
      } catch (const Error& e) {
        throw Error(where + e.what());
      }
      if (state.weights.empty()) {
        throw Error(where + "was trained with weights; --weights random cannot replace them");
      }
    }
    if (!options.tiling.empty()) {
      try {
        override_tiling(info, options.tiling);
      } catch (const Error& e) {
        throw Error(where + e.what());
      }
    }
    EmbedderOptions runtime{.image_size = info.options.embedder.image_size,
                            .crop_size = info.options.embedder.crop_size,
                            .tiling = info.options.embedder.tiling,
                            .batch_size = options.batch_size,
                            .threads = options.threads,
                            .image_limits = options.image_limits};
    const auto restore = [&] {
      try {
        return Embedder::restore(state, runtime);
      } catch (const Error& e) {
        throw Error(where + e.what());
      }
    };
    const std::shared_ptr<const Embedder> embedder =
        options.backbones ? options.backbones->impl_->find_or_add(state, runtime, restore)
                          : std::make_shared<const Embedder>(restore());
    const GridShape grid = embedder->grid();
    // Other tiles give another grid; the bank's patches are compared one by one whatever it is.
    if (!options.tiling.empty() && grid.dim == info.grid.dim) info.grid = grid;
    if (grid.height != info.grid.height || grid.width != info.grid.width ||
        grid.dim != info.grid.dim) {
      throw Error(where + "field grid is " + std::to_string(info.grid.height) + "x" +
                  std::to_string(info.grid.width) + "x" + std::to_string(info.grid.dim) +
                  ", the backbone gives " + std::to_string(grid.height) + "x" +
                  std::to_string(grid.width) + "x" + std::to_string(grid.dim));
    }
    try {
      patchcore::Scorer scorer(contents.bank, {.num_neighbors = info.options.num_neighbors});
      return Model(std::make_unique<Impl>(std::move(info), std::move(embedder), std::move(scorer)));
    } catch (const Error& e) {
      throw Error(where + e.what());
    }
  });
}

std::vector<Prediction> Model::predict(std::span<const std::filesystem::path> images,
                                       std::string_view progress_label, PredictTimings* timings,
                                       std::vector<std::string>* unreadable) const {
  return nn::torch_errors_as_pv("predicting with the " + impl_->info.category + " model: ", [&] {
    std::vector<Prediction> predictions(images.size());
    if (unreadable != nullptr) {
      for (Prediction& p : predictions) p.score = std::numeric_limits<float>::quiet_NaN();
    }
    EmbedTimings embed_timings;
    impl_->embedder.embed_each(
        images,
        [&](const PatchEmbeddings& batch, std::span<const std::size_t> indices) {
          impl_->score(batch, indices, predictions, timings);
        },
        progress_label, &embed_timings, unreadable);
    if (timings != nullptr) {
      timings->read_seconds += embed_timings.read_seconds;
      timings->backbone_seconds += embed_timings.backbone_seconds;
      timings->images += static_cast<std::int64_t>(images.size());
    }
    return predictions;
  });
}

Prediction Model::predict(const Image& image) const {
  return nn::torch_errors_as_pv("predicting with the " + impl_->info.category + " model: ", [&] {
    std::vector<Prediction> out(1);
    const std::size_t index = 0;
    impl_->score(impl_->embedder.embed(std::span(&image, 1)), std::span(&index, 1), out, nullptr);
    return std::move(out.front());
  });
}

const Embedder& Model::backbone() const {
  return impl_->embedder;
}

std::vector<Prediction> Model::score(const PatchEmbeddings& embeddings) const {
  return nn::torch_errors_as_pv("predicting with the " + impl_->info.category + " model: ", [&] {
    const GridShape& g = embeddings.grid;
    if (g.dim != impl_->info.grid.dim ||
        embeddings.values.size() !=
            static_cast<std::size_t>(embeddings.count * g.height * g.width * g.dim)) {
      throw Error("embeddings of " + std::to_string(g.dim) + "-d patches do not fit its " +
                  std::to_string(impl_->info.grid.dim) + "-d bank, or their size disagrees");
    }
    const std::size_t images = embeddings.layouts.empty()
                                   ? static_cast<std::size_t>(embeddings.count)
                                   : embeddings.layouts.size();
    std::vector<Prediction> out(images);
    std::vector<std::size_t> indices(images);
    for (std::size_t i = 0; i < images; ++i) indices[i] = i;
    impl_->score(embeddings, indices, out, nullptr);
    return out;
  });
}

std::span<const float> Model::memory_bank() const {
  const at::Tensor& bank = impl_->scorer.bank();
  return {bank.data_ptr<float>(), static_cast<std::size_t>(bank.numel())};
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
    const at::Tensor& bank = impl_->scorer.bank();
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
        keep.empty() ? bank : at::cat({bank, patches.index_select(0, at::tensor(keep, at::kLong))});
    patchcore::Scorer scorer(grown, {.num_neighbors = info.options.num_neighbors});
    // Nothing above changed the model; from here on nothing can fail.
    impl_->scorer = std::move(scorer);
    info.bank_size = grown.size(0);
    info.train_images += report.images;
    info.train_patches += report.patches;
    info.covering_radius = report.covering_radius_after;
    ++info.revision;
    report.seconds = clock.total();
    return report;
  });
}

void Model::set_thresholds(const Thresholds& thresholds) {
  impl_->info.thresholds = thresholds;
}

void Model::set_similarity_rule(const SimilarityRule& rule) {
  impl_->info.similarity = rule;
}

float Model::normalize_image(float score) const {
  return impl_->normalize_image(score);
}

float Model::normalize_pixel(float score) const {
  const auto& t = impl_->info.thresholds;
  if (!t) return std::numeric_limits<float>::quiet_NaN();
  return normalize_score(score, t->pixel, t->pixel_min, t->pixel_max);
}

std::vector<float> Model::normalize_map(const AnomalyMap& map) const {
  std::vector<float> normalized(map.values.size());
  for (std::size_t i = 0; i < normalized.size(); ++i) {
    const float n = normalize_pixel(map.values[i]);
    normalized[i] = std::isnan(n) ? 0.0f : n;
  }
  return normalized;
}

const ModelInfo& Model::info() const {
  return impl_->info;
}

}  // namespace pv
