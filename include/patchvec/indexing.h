// Loading a category's dataset into a vector store, for `patchvec index` and the demo: every
// training image (normal) and test image (labelled by its folder) with its score and verdict.
// Defective images are stored by their defect embedding (Prediction::defect_embedding: what
// "closest known defects" compares), normal ones by their image embedding.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <vector>

#include <patchvec/dataset.h>
#include <patchvec/evaluation.h>
#include <patchvec/model.h>
#include <patchvec/store.h>

namespace pv {

struct IndexReport {
  std::size_t images = 0;    // stored
  std::size_t verified = 0;  // copy_category(): images predicted again to check the copy
  double embed_seconds = 0;
  double load_seconds = 0;
};

// Predicts every image of `category` with `model` and replaces the category's dataset images
// (images added one at a time stay) in `store`. Throws pv::Error for unreadable
// images or a store failure (the store keeps what it had).
IndexReport index_category(const Model& model, const Category& category, VectorStore& store);

// The same with embeddings computed already, by a training run (TrainResult::train_embeddings, in
// the order of category.train, and its evaluation's images, in the order of category.test): no
// image is read again. embed_seconds is 0.
IndexReport index_category(const Model& model, const Category& category,
                           std::span<const std::vector<float>> train_embeddings,
                           std::span<const ImageResult> test, VectorStore& store);

// Copies the images of the model's category from another store that was indexed with the same
// model (`from`: e.g. the embedded store `patchvec demo` filled, into PostgreSQL) instead of
// predicting them again.
// `from`'s dataset images replace `to`'s; its images added one at a time are added unless `to`
// has one of the same path, label and embedding already, so a second copy adds nothing.
// Before anything is stored, the first normal and the first defective image of `from` whose files
// can be read (paths as stored, relative ones to the working directory), and the first with a
// score if neither has one, are predicted again: their embeddings must match the stored ones
// (cosine similarity at least 0.9999), and where a score is stored, the score (relative 1e-3) and
// the verdict too. Throws pv::Error, naming the
// store and the image, when `from` has no images of the category, none of them can be read, or
// they were not made by `model` (another backbone, weights, memory bank or thresholds); `to` is
// then unchanged. `from` and `to` must not be the same store.
IndexReport copy_category(const Model& model, const VectorStore& from, VectorStore& to);

}  // namespace pv
