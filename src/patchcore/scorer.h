// PatchCore's scoring: every test patch's distance to its nearest memory-bank patch, and the
// image score, anomalib's re-weighted maximum:
//   s* = the largest patch distance, m* = that patch's nearest bank vector,
//   N  = the num_neighbors nearest bank vectors of m* (m* itself first),
//   w  = 1 - softmax(|patch - n| for n in N)[0],   score = w * s*.
// With num_neighbors = 1 the score is s* itself.
#pragma once

#include <cstdint>
#include <functional>

#include <ATen/core/Tensor.h>

#include "search/exact_search.h"

namespace pv::patchcore {

struct ScorerOptions {
  int num_neighbors = 9;
  search::SearchOptions search;
};

struct Scores {
  at::Tensor patch_distances;  // B x h x w
  at::Tensor image_scores;     // B
};

// Immutable after construction; score() may run on many threads at once.
class Scorer {
 public:
  // `bank`: M x D. `bank_neighbors`: M x k int64 from neighbors_of() with k >= num_neighbors,
  // or undefined to compute them here (reporting the vectors done to `on_progress`).
  Scorer(const at::Tensor& bank, at::Tensor bank_neighbors, const ScorerOptions& options,
         const std::function<void(std::int64_t)>& on_progress = {});

  // `embeddings`: B x h x w x D.
  Scores score(const at::Tensor& embeddings) const;

  const at::Tensor& bank() const { return bank_; }
  const at::Tensor& bank_neighbors() const { return neighbors_; }

  // Each bank vector's k nearest bank vectors (itself first): what the re-weighting needs, computed
  // once at fit time.
  // `on_progress` receives the number of vectors done so far.
  static at::Tensor neighbors_of(const search::ExactSearch& bank, const at::Tensor& vectors, int k,
                                 const std::function<void(std::int64_t)>& on_progress = {});

 private:
  ScorerOptions options_;
  at::Tensor bank_;
  search::ExactSearch search_;
  at::Tensor neighbors_;
};

}  // namespace pv::patchcore
