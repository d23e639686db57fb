// Approximate k-nearest-neighbour search over a fixed bank, for banks whose exact search costs
// the whole product (fine-grained embeddings on CPUs without native bfloat16: exact_search.h).
//
// Each query's shortlist is its `candidates` nearest bank vectors by an estimate in a few of the
// bank's principal components, plus one more coordinate: the length of what those components
// leave out (so the estimate is the distance between the vectors with that residual turned onto
// one shared axis, a lower bound on the true distance up to rounding). The answer is the k
// nearest of the shortlist by the exact distance, measured as ExactSearch measures a float32
// bank's (a bfloat16 bank's values are widened first). So every answer is a bank vector at its
// exact distance, never nearer than the true k-th; it is the true answer (for a float32 bank
// ExactSearch's, bit for bit) when the true neighbours are on the shortlist. How often that holds
// depends on the data: measure it (bench/search_bench --candidates).
//
// The work: a query x bank product in components + 1 dimensions (128 of 1536: 1/12 of the exact
// product), a pass over each query's row of estimates, and `candidates` exact distances. The
// estimates' product runs on int16 multiply-adds (util/int16_products.h: the reduced bank and the
// queries each on a fixed-point grid, a step of at most 1/16,000 of the longest vector's length):
// their rounding can only change which bank vectors make the end of a shortlist, never a distance
// measured.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "search/exact_search.h"
#include "util/int16_products.h"

namespace pv::search {

struct ShortlistOptions {
  // Principal components the estimate keeps (at most the bank's dimension).
  std::int64_t components = 128;
  // Bank vectors measured exactly per query (at least the k searched for; at most the bank).
  std::int64_t candidates = 64;
  // search_exact(): the products held at once (queries x the whole bank).
  std::int64_t max_block_bytes = std::int64_t{16} << 20;
  // The components are those of at most this many bank vectors (evenly spaced): enough for the
  // leading directions, and a bounded cost when the search is built.
  std::int64_t basis_sample = 20000;
};

// Immutable after construction: search() may run on many threads at once.
class ShortlistSearch final : public BankSearch {
 public:
  // `vectors`: M x D, float32 or bfloat16 (widened: distances are to those values widened).
  explicit ShortlistSearch(const at::Tensor& vectors, const ShortlistOptions& options = {});

  // `queries`: Q x D float32; 1 <= k <= candidates(). Distances ascending per row, among equal
  // ones the lower index first.
  Neighbors search(const at::Tensor& queries, int k) const override;
  // The whole bank's exact answer (1 <= k <= size()), by a product with every bank vector and a
  // rigorous bound on its rounding (exact_search.h): ExactSearch's float32 answer, bit for bit.
  // Costs a full search per row: for the few rows an exact answer is needed for.
  Neighbors search_exact(const at::Tensor& queries, int k) const override;
  bool approximate() const override { return true; }

  std::int64_t size() const override { return centred_.size(0); }
  std::int64_t dim() const override { return centred_.size(1); }
  std::int64_t components() const { return basis_.size(1); }
  std::int64_t candidates() const { return candidates_; }

 private:
  ShortlistOptions options_;
  std::int64_t candidates_;
  at::Tensor mean_;                  // D
  at::Tensor centred_;               // M x D float32
  at::Tensor squared_norms_;         // M, of centred_'s rows
  at::Tensor norms_;                 // M
  at::Tensor basis_;                 // D x components, orthonormal columns
  at::Tensor reduced_norms_;         // M: squared norms of the reduced rows (projection, residual)
  double reduced_step_ = 1;          // the reduced rows' grid step
  std::vector<Int16Panels> panels_;  // the reduced rows on their grid, a chunk at a time
};

}  // namespace pv::search
