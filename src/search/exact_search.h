// Exact Euclidean k-nearest-neighbour search over a fixed set of vectors (a memory bank).
//
// Distances come from matrix products, ||x||^2 - 2 x.y + ||y||^2, on vectors centred at the
// bank's mean (distances do not change, rounding errors shrink). On CPUs that multiply bfloat16
// natively the product runs in bfloat16 (AMX: ~3-10x faster than float32) and serves only as a
// filter: a rigorous bound on its rounding error says which bank vectors could still be among the
// k nearest, and only those are measured again in float32. Results are therefore exact (to
// float32 rounding) whichever precision the first pass used.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace pv::search {

enum class Precision {
  kAuto,      // bfloat16 where the CPU has it natively, else float32
  kFloat32,   // float32 products
  kBFloat16,  // bfloat16 products (emulated, slowly, on CPUs without native support)
};

struct SearchOptions {
  Precision precision = Precision::kAuto;
  // Upper bound on the distance block held at once (queries x bank products).
  std::int64_t max_block_bytes = std::int64_t{256} << 20;
};

struct Neighbors {
  at::Tensor distances;  // queries x k, float32, Euclidean, ascending per row
  at::Tensor indices;    // queries x k, int64, rows of the bank
};

// Immutable after construction: search() may run on many threads at once.
class ExactSearch {
 public:
  // `vectors`: M x D float32, or bfloat16 for a bank kept in half the memory: then distances are
  // exact to those bfloat16 values widened (copied; no float32 copy of the bank is kept).
  explicit ExactSearch(const at::Tensor& vectors, const SearchOptions& options = {});

  // `queries`: Q x D float32; 1 <= k <= size().
  Neighbors search(const at::Tensor& queries, int k) const;

  std::int64_t size() const { return filter_.size(0); }
  std::int64_t dim() const { return filter_.size(1); }
  Precision precision() const { return precision_; }  // kFloat32 or kBFloat16, never kAuto

 private:
  SearchOptions options_;
  Precision precision_;
  at::Tensor mean_;           // D
  at::Tensor centred_;        // M x D float32; undefined for a bfloat16 bank...
  at::Tensor raw_;            // ...kept as given instead, M x D bfloat16
  at::Tensor filter_;         // M x D centred, in the first pass's precision
  at::Tensor squared_norms_;  // M
  at::Tensor norms_;          // M
};

}  // namespace pv::search
