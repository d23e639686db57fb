// pv::Model: PatchCore assembled from the embedder, the memory bank, the scorer and the map.
#include <cmath>
#include <limits>
#include <optional>

#include <ATen/ATen.h>

#include <patchvec/error.h>
#include <patchvec/model.h>

#include "nn/torch_errors.h"
#include "patchcore/anomaly_map.h"
#include "patchcore/memory_bank.h"
#include "patchcore/model_file.h"
#include "patchcore/model_info.h"
#include "patchcore/scorer.h"
#include "util/clock.h"
#include "util/memory.h"
#include "util/progress.h"
#include "util/stopwatch.h"

namespace pv {
namespace {

patchcore::Upsampling to_internal(MapUpsampling mode) {
  return mode == MapUpsampling::kNearest ? patchcore::Upsampling::kNearest
                                         : patchcore::Upsampling::kBilinear;
}

}  // namespace

float normalize_score(float score, float threshold, float min, float max) {
  const float range = max - min;
  const float value = (score - threshold) / (range > 0 ? range : 1.0f) + 0.5f;
  return std::clamp(value, 0.0f, 1.0f);
}

// The patch embeddings of image `b` of a batch.
std::span<const float> image_patches(const PatchEmbeddings& batch, std::int64_t b) {
  const auto per_image =
      static_cast<std::size_t>(batch.grid.height * batch.grid.width * batch.grid.dim);
  return std::span(batch.values).subspan(static_cast<std::size_t>(b) * per_image, per_image);
}

void append_image_embeddings(const PatchEmbeddings& batch, std::vector<std::vector<float>>& out) {
  for (std::int64_t b = 0; b < batch.count; ++b) {
    out.push_back(
        image_embedding(image_patches(batch, b), static_cast<std::size_t>(batch.grid.dim)));
  }
}

struct Model::Impl {
  ModelInfo info;
  Embedder embedder;
  patchcore::Scorer scorer;

  Impl(ModelInfo model_info, Embedder backbone, patchcore::Scorer bank_scorer)
      : info(std::move(model_info)),
        embedder(std::move(backbone)),
        scorer(std::move(bank_scorer)) {}

  patchcore::AnomalyMapOptions map_options() const {
    return {.size = info.crop_size > 0 ? info.crop_size : info.image_size,
            .sigma = info.sigma,
            .upsampling = to_internal(info.upsampling)};
  }

  float normalize_image(float score) const {
    if (!info.thresholds) return std::numeric_limits<float>::quiet_NaN();
    const Thresholds& t = *info.thresholds;
    return normalize_score(score, t.image, t.image_min, t.image_max);
  }

  // Scores one batch of embeddings into predictions[indices[b]].
  void score(const PatchEmbeddings& batch, std::span<const std::size_t> indices,
             std::vector<Prediction>& out, PredictTimings* timings) const {
    Stopwatch clock;
    const auto& g = batch.grid;
    const at::Tensor embeddings =
        at::from_blob(const_cast<float*>(batch.values.data()),
                      {batch.count, g.height, g.width, g.dim}, at::kFloat);
    const patchcore::Scores scores = scorer.score(embeddings);
    const double search = clock.lap();
    const at::Tensor maps =
        patchcore::anomaly_maps(scores.patch_distances, map_options()).contiguous();
    const double map = clock.lap();
    if (timings != nullptr) {
      timings->search_seconds += search;
      timings->map_seconds += map;
    }
    for (std::int64_t b = 0; b < batch.count; ++b) {
      Prediction& p = out[indices[b]];
      p.score = scores.image_scores[b].item<float>();
      if (!std::isfinite(p.score)) {
        throw Error("model of " + info.category +
                    " gave a non-finite score: its bank or backbone is damaged");
      }
      p.normalized = normalize_image(p.score);
      p.anomalous = info.thresholds.has_value() && p.score >= info.thresholds->image;
      p.map.height = static_cast<int>(maps.size(1));
      p.map.width = static_cast<int>(maps.size(2));
      const float* values = maps.data_ptr<float>() + b * maps.size(1) * maps.size(2);
      p.map.values.assign(values, values + maps.size(1) * maps.size(2));
      const at::Tensor patches = scores.patch_distances[b].contiguous();
      p.patch_distances.assign(patches.data_ptr<float>(),
                               patches.data_ptr<float>() + patches.numel());
      p.embedding = image_embedding(image_patches(batch, b), static_cast<std::size_t>(g.dim));
    }
  }
};

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
                      const PatchCoreOptions& options, FitReport* report,
                      std::vector<std::vector<float>>* image_embeddings) {
  if (images.empty()) throw Error("training needs at least one image");
  check_category_name(category);
  if (!(options.sigma > 0) ||
      options.sigma > patchcore::max_sigma(options.embedder.crop_size > 0
                                               ? options.embedder.crop_size
                                               : options.embedder.image_size)) {
    throw Error("the anomaly map blur sigma " + std::to_string(options.sigma) +
                " does not fit the image size");
  }
  Stopwatch total;
  FitReport local;
  Embedder embedder(options.embedder);
  if (!embedder.ready()) {
    Stopwatch clock;
    embedder.calibrate(images);
    local.calibrate_seconds = clock.lap();
  }
  const GridShape grid = embedder.grid();
  const std::int64_t patches = static_cast<std::int64_t>(images.size()) * grid.height * grid.width;
  patchcore::MemoryBankBuilder builder(patches, grid.dim,
                                       {.coreset_ratio = options.coreset_ratio,
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
  patchcore::BankReport bank_report;
  const at::Tensor bank = builder.finish(&bank_report);
  local.project_seconds = bank_report.project_seconds;
  local.coreset_seconds = bank_report.coreset_seconds;
  local.spilled = bank_report.spilled;

  clock.lap();
  search::SearchOptions search_options;
  if (options.max_memory_bytes > 0) search_options.max_block_bytes = options.max_memory_bytes / 16;
  std::optional<ProgressBar> progress;  // only when the neighbours are computed at all
  if (options.num_neighbors > 1 && bank.size(0) > 1) {
    progress.emplace("bank neighbours", static_cast<std::size_t>(bank.size(0)), "vectors");
  }
  std::int64_t shown = 0;
  patchcore::Scorer scorer(bank, at::Tensor(),
                           {.num_neighbors = options.num_neighbors, .search = search_options},
                           [&](std::int64_t n) {
                             progress->advance(static_cast<std::size_t>(n - shown));
                             shown = n;
                           });
  progress.reset();
  local.neighbors_seconds = clock.lap();

  ModelInfo info;
  info.category = std::move(category);
  info.created = utc_now();
  info.backbone = embedder.state();
  info.pretrained = embedder.pretrained();
  info.image_size = options.embedder.image_size;
  info.crop_size = options.embedder.crop_size;
  info.grid = grid;
  info.bank_size = bank.size(0);
  info.train_images = static_cast<std::int64_t>(images.size());
  info.train_patches = patches;
  info.coreset_ratio = options.coreset_ratio;
  info.projection_dim = bank_report.projection_dim;
  info.covering_radius = bank_report.covering_radius;
  info.seed = options.seed;
  info.num_neighbors = options.num_neighbors;
  info.sigma = options.sigma;
  info.upsampling = options.upsampling;
  local.total_seconds = total.total();
  local.peak_memory_bytes = peak_memory_bytes();
  if (report != nullptr) *report = local;
  return Model(std::make_unique<Impl>(std::move(info), std::move(embedder), std::move(scorer)));
}

void Model::save(const std::filesystem::path& path) const {
  const ModelInfo& info = impl_->info;
  patchcore::write_model_file(path, {.metadata = patchcore::to_json(info),
                                     .bank = impl_->scorer.bank(),
                                     .bank_neighbors = impl_->scorer.bank_neighbors(),
                                     .batchnorm = info.backbone.batchnorm});
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
    if (!options.weights.empty()) state.weights = options.weights;
    EmbedderOptions runtime{.image_size = info.image_size,
                            .crop_size = info.crop_size,
                            .batch_size = options.batch_size,
                            .threads = options.threads,
                            .image_limits = options.image_limits};
    Embedder embedder = [&] {
      try {
        return Embedder::restore(state, runtime);
      } catch (const Error& e) {
        throw Error(where + e.what());
      }
    }();
    const GridShape grid = embedder.grid();
    if (grid.height != info.grid.height || grid.width != info.grid.width ||
        grid.dim != info.grid.dim) {
      throw Error(where + "field grid is " + std::to_string(info.grid.height) + "x" +
                  std::to_string(info.grid.width) + "x" + std::to_string(info.grid.dim) +
                  ", the backbone gives " + std::to_string(grid.height) + "x" +
                  std::to_string(grid.width) + "x" + std::to_string(grid.dim));
    }
    try {
      patchcore::Scorer scorer(contents.bank, contents.bank_neighbors,
                               {.num_neighbors = info.num_neighbors});
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

std::span<const float> Model::memory_bank() const {
  const at::Tensor& bank = impl_->scorer.bank();
  return {bank.data_ptr<float>(), static_cast<std::size_t>(bank.numel())};
}

void Model::set_thresholds(const Thresholds& thresholds) {
  impl_->info.thresholds = thresholds;
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
