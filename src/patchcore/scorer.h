// PatchCore's scoring: every test patch's distance to its nearest memory-bank patch, and the
// image score, anomalib's re-weighted maximum:
//   s* = the largest patch distance, m* = that patch's nearest bank vector,
//   N  = the num_neighbors nearest bank vectors of m* (m* itself first), searched when scoring as
//        anomalib does (one search for a batch's m* rows; each row's answer does not depend on
//        the others: the search measures its final distances row by row),
//   w  = 1 - softmax(|patch - n| for n in N)[0],   score = w * s*.
// With num_neighbors = 1 the score is s* itself.
#pragma once

#include <cstdint>

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
  // `bank`: M x D, float32 or bfloat16 (kept so: a reduced-precision model's bank).
  Scorer(const at::Tensor& bank, const ScorerOptions& options);

  // `embeddings`: B x h x w x D.
  Scores score(const at::Tensor& embeddings) const;

  const at::Tensor& bank() const { return bank_; }

 private:
  ScorerOptions options_;
  at::Tensor bank_;
  search::ExactSearch search_;
};

}  // namespace pv::patchcore
