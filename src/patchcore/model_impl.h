// pv::Model's insides, shared by its files: model.cpp (loading, saving, predicting) and
// model_fit.cpp (fitting, growing the bank). Private to the patchcore module.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <ATen/ATen.h>

#include <patchvec/embedder.h>
#include <patchvec/model.h>

#include "patchcore/anomaly_map.h"
#include "patchcore/scorer.h"

namespace pv {
namespace patchcore {

// Where each image of a batch lies among its network inputs: image k is inputs
// [first[k], first[k + 1]) (one input each without tiling, its tiles with it).
std::vector<std::int64_t> input_offsets(const PatchEmbeddings& batch);

// The patch embeddings of inputs [begin, end) of a batch.
std::span<const float> input_patches(const PatchEmbeddings& batch, std::int64_t begin,
                                     std::int64_t end);

// Appends the image embedding (pv::image_embedding()) of each image of a batch to `out`.
void append_image_embeddings(const PatchEmbeddings& batch, std::vector<std::vector<float>>& out);

// With tiling, the tile is the network input whole, so the preprocessing sizes read as (tile,
// no crop) everywhere (the model file, pictures).
void use_tiling(EmbedderOptions& embedder, const TilingOptions& tiling);

// The options a fit works with.
PatchCoreOptions effective(PatchCoreOptions options);

// One image's map: the anomaly map of its single input, or its tiles' stitched map.
at::Tensor image_map(const at::Tensor& patch_distances, const TileLayout* layout,
                     const patchcore::AnomalyMapOptions& options);

}  // namespace patchcore

struct Model::Impl {
  ModelInfo info;
  std::shared_ptr<const Embedder> backbone;  // shared with other models (BackboneCache)
  const Embedder& embedder;                  // *backbone
  patchcore::Scorer scorer;
  // A freshly fitted reduced-precision model's bank before it was rounded to bfloat16: what
  // with_precision(fp32) makes the float32 model of. Undefined once loaded or updated.
  at::Tensor fp32_bank;

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

  // Model::predict() of files or of decoded images, which the embedder reads in batches alike.
  // Defined in model.cpp, its only user.
  template <typename Input>
  std::vector<Prediction> predict(std::span<const Input> images, std::string_view progress_label,
                                  PredictTimings* timings,
                                  std::vector<std::string>* unreadable) const;

  // Scores one batch of embeddings into predictions[indices[k]], k the batch's k-th image.
  void score(const PatchEmbeddings& batch, std::span<const std::size_t> indices,
             std::vector<Prediction>& out, PredictTimings* timings) const;
};

}  // namespace pv
