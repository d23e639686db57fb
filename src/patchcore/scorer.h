// PatchCore's scoring: every test patch's distance to its nearest memory-bank patch, and the
// image score, anomalib's re-weighted maximum:
//   s* = the largest patch distance, m* = that patch's nearest bank vector,
//   N  = the num_neighbors nearest bank vectors of m* (m* itself first), searched when scoring as
//        anomalib does (one search for a batch's m* rows; each row's answer does not depend on
//        the others: the search measures its final distances row by row),
//   w  = 1 - softmax(|patch - n| for n in N)[0],   score = w * s*.
// With num_neighbors = 1 the score is s* itself.
//
// With the shortlist search (SearchMethod::kShortlist) a patch whose nearest bank vector is not
// on its shortlist gets a larger distance than the exact one, never a smaller one. So the image
// score stays exact: each image's patches are measured exactly in descending order of their
// shortlist distance until the next one's is below the largest exact distance found (its true
// distance is no larger), which gives s*, m* (the first patch at s*, as the exact search's) and
// N exactly (bit for bit those of the exact search in float32; a bfloat16 bank that the exact
// search measures in bfloat16 products, on CPUs with them, to float32 rounding). Only the map's
// other patches may keep a larger distance.
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>

#include <patchvec/search_method.h>

#include "search/exact_search.h"
#include "search/shortlist_search.h"

namespace pv::patchcore {

struct ScorerOptions {
  int num_neighbors = 9;
  // kAuto: by the bank's size and this CPU (resolve_search_method()).
  SearchMethod method = SearchMethod::kExact;
  search::SearchOptions search;        // the exact search's
  search::ShortlistOptions shortlist;  // the shortlist's
};

struct Scores {
  at::Tensor patch_distances;  // B x h x w
  at::Tensor image_scores;     // B
  // Patches measured exactly after their shortlist (0 with the exact search).
  std::int64_t remeasured = 0;
};

// Immutable after construction (copies share the search); score() may run on many threads at
// once.
class Scorer {
 public:
  // `bank`: M x D, float32 or bfloat16 (kept so: a reduced-precision model's bank).
  Scorer(const at::Tensor& bank, const ScorerOptions& options);

  // `embeddings`: B x h x w x D.
  Scores score(const at::Tensor& embeddings) const;

  const at::Tensor& bank() const { return bank_; }
  // kExact or kShortlist, never kAuto.
  SearchMethod method() const { return method_; }

 private:
  // Makes each image's largest distance (and its index) exact: see the header comment.
  std::int64_t remeasure_maxima(const at::Tensor& patches, at::Tensor& distances,
                                at::Tensor& locations) const;

  ScorerOptions options_;
  at::Tensor bank_;
  SearchMethod method_;
  std::shared_ptr<const search::BankSearch> search_;
};

}  // namespace pv::patchcore
