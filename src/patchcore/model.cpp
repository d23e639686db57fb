// pv::Model: PatchCore assembled from the embedder, the memory bank, the scorer and the map.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

#include <ATen/ATen.h>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/stopwatch.h>
#include <patchvec/system.h>
#include <patchvec/weights.h>

#include "nn/torch_errors.h"
#include "patchcore/anomaly_map.h"
#include "patchcore/memory_bank.h"
#include "patchcore/model_file.h"
#include "patchcore/model_impl.h"
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

namespace patchcore {

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

}  // namespace patchcore

using patchcore::image_map;
using patchcore::input_offsets;
using patchcore::input_patches;
using patchcore::use_tiling;

void Model::Impl::score(const PatchEmbeddings& batch, std::span<const std::size_t> indices,
                        std::vector<Prediction>& out, PredictTimings* timings) const {
  Stopwatch clock;
  const auto& g = batch.grid;
  const at::Tensor embeddings = at::from_blob(const_cast<float*>(batch.values.data()),
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
    p.verdict = info.thresholds ? verdict_of(p.score >= info.thresholds->image) : Verdict::kUnknown;
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
    timings->remeasured_patches += scores.remeasured;
    timings->search_seconds += search;
    timings->map_seconds += map;
  }
}

namespace {

// Why this CPU cannot run `state`'s precision as it was checked; empty when it can.
std::string unsupported_here(const BackboneState& state) {
  std::string why = precision_unsupported(state.precision);
  if (why.empty() && state.precision == Precision::kInt8) {
    why = int8_stem_unsupported(state.int8_stem_weight_bits);
  }
  return why;
}

// The precision a loaded model runs in (ModelLoadOptions::precision): its own or fp32.
Precision run_precision(const ModelInfo& info, std::optional<Precision> asked,
                        const std::string& where) {
  const Precision own = info.backbone.precision;
  if (asked) {
    if (*asked != own && *asked != Precision::kFloat32) {
      throw Error(where + "was trained and checked in " + precision_name(own) + "; " +
                  precision_name(*asked) + " was never checked against its thresholds: run it in " +
                  (own == Precision::kFloat32 ? std::string("fp32")
                                              : precision_name(own) + std::string(" or fp32")) +
                  ", or train it with --precision " + precision_name(*asked));
    }
    require_precision(*asked, "--precision");
    // The model's own reduced precision may still be one this CPU cannot run as it was checked.
    const std::string why = *asked == own ? unsupported_here(info.backbone) : "";
    if (!why.empty()) {
      throw Error(where + "cannot run in " + precision_name(own) + " here: " + why +
                  "; run it in fp32");
    }
    return *asked;
  }
  const std::string why = unsupported_here(info.backbone);
  if (why.empty()) return own;
  static std::once_flag once;
  std::call_once(once, [&] {
    log::warn(where + "trained in " + std::string(precision_name(own)) +
              ", runs in fp32 here: " + why);
  });
  return Precision::kFloat32;
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

// What makes two int8 backbones of the same weights differ: each category measures its own
// activation ranges (models of one pretrained backbone share everything else).
std::string int8_key(const BackboneState& state) {
  std::vector<float> ranges = state.activation_min;
  ranges.insert(ranges.end(), state.activation_max.begin(), state.activation_max.end());
  return std::to_string(state.int8_stem_weight_bits) + "/" +
         sha256_hex(std::as_bytes(std::span(ranges)));
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
    std::string key =
        state.backbone + "/" + state.weights_sha256 + "/" + sha256_hex(state.batchnorm) + "/" +
        std::to_string(runtime.image_size) + "/" + std::to_string(runtime.crop_size) + "/" +
        std::to_string(t.size) + "/" + std::to_string(t.overlap) + "/" + std::to_string(t.scale) +
        "/" + std::to_string(runtime.batch_size) + "/" +
        std::to_string(runtime.image_limits.max_pixels) + "/" + precision_name(state.precision);
    if (state.precision == Precision::kInt8) key.append("/").append(int8_key(state));
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
    patchcore::ModelFileContents contents;
    try {
      contents = patchcore::read_model_file(path);
    } catch (const Error& e) {
      throw ModelFileError(e.what());
    }
    ModelInfo info;
    try {
      info = patchcore::model_info_from(contents.metadata);
    } catch (const nlohmann::json::exception& e) {
      throw ModelFileError(where + "corrupt metadata (" + e.what() + ")");
    } catch (const Error& e) {
      throw ModelFileError(where + e.what());
    }
    try {
      patchcore::check_contents(info, contents);
    } catch (const Error& e) {
      throw ModelFileError(where + e.what());
    }
    info.backbone.batchnorm = std::move(contents.batchnorm);
    BackboneState state = info.backbone;
    state.precision = run_precision(info, options.precision, where);
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
      patchcore::Scorer scorer(
          contents.bank, {.num_neighbors = info.options.num_neighbors, .method = options.search});
      return Model(std::make_unique<Impl>(std::move(info), std::move(embedder), std::move(scorer)));
    } catch (const Error& e) {
      throw Error(where + e.what());
    }
  });
}

template <typename Input>
std::vector<Prediction> Model::Impl::predict(std::span<const Input> images,
                                             std::string_view progress_label,
                                             PredictTimings* timings,
                                             std::vector<std::string>* unreadable) const {
  return nn::torch_errors_as_pv("predicting with the " + info.category + " model: ", [&] {
    std::vector<Prediction> predictions(images.size());
    if (unreadable != nullptr) {
      for (Prediction& p : predictions) p.score = std::numeric_limits<float>::quiet_NaN();
    }
    EmbedTimings embed_timings;
    embedder.embed_each(
        images,
        [&](const PatchEmbeddings& batch, std::span<const std::size_t> indices) {
          score(batch, indices, predictions, timings);
        },
        progress_label, &embed_timings, unreadable);
    if (timings != nullptr) {
      timings->read_seconds += embed_timings.read_seconds;
      timings->backbone_seconds += embed_timings.backbone_seconds;
      timings->recomputed_in_float32 += embed_timings.recomputed_in_float32;
      timings->images += static_cast<std::int64_t>(images.size());
    }
    return predictions;
  });
}

std::vector<Prediction> Model::predict(std::span<const Image* const> images,
                                       std::string_view progress_label, PredictTimings* timings,
                                       std::vector<std::string>* unreadable) const {
  return impl_->predict(images, progress_label, timings, unreadable);
}

std::vector<Prediction> Model::predict(std::span<const std::filesystem::path> images,
                                       std::string_view progress_label, PredictTimings* timings,
                                       std::vector<std::string>* unreadable) const {
  return impl_->predict(images, progress_label, timings, unreadable);
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

std::vector<float> Model::memory_bank() const {
  const at::Tensor bank = impl_->scorer.bank().to(at::kFloat).contiguous();
  return {bank.data_ptr<float>(), bank.data_ptr<float>() + bank.numel()};
}

Precision Model::precision() const {
  return impl_->embedder.precision();
}

SearchMethod Model::search_method() const {
  return impl_->scorer.method();
}

Model Model::with_precision(Precision precision) const {
  const Precision own = impl_->info.backbone.precision;
  if (precision != own && precision != Precision::kFloat32) {
    throw Error(std::string("the ") + impl_->info.category + " model was trained in " +
                precision_name(own) + "; it runs in that or fp32, not " +
                precision_name(precision));
  }
  auto view = std::make_shared<const Embedder>(impl_->embedder.with_precision(precision));
  if (precision == own || !impl_->fp32_bank.defined()) {
    return Model(std::make_unique<Impl>(impl_->info, std::move(view), impl_->scorer));
  }
  // Freshly fitted: the float32 model itself, as training in fp32 would have made it.
  ModelInfo info = impl_->info;
  info.backbone.precision = info.options.precision = Precision::kFloat32;
  info.backbone.activation_min.clear();
  info.backbone.activation_max.clear();
  info.agreement.reset();
  info.thresholds.reset();
  patchcore::Scorer scorer(impl_->fp32_bank, {.num_neighbors = info.options.num_neighbors,
                                              .method = impl_->scorer.method()});
  return Model(std::make_unique<Impl>(std::move(info), std::move(view), std::move(scorer)));
}

void Model::set_thresholds(const Thresholds& thresholds) {
  impl_->info.thresholds = thresholds;
}

void Model::set_similarity_rule(const SimilarityRule& rule) {
  impl_->info.similarity = rule;
}

void Model::set_agreement(const PrecisionAgreement& agreement) {
  impl_->info.agreement = agreement;
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
