// Greedy k-center selection (Gonzalez 1985): start from one point, then repeatedly add the point
// farthest from every centre chosen so far. PatchCore keeps these points as its memory bank: they
// cover the training patches with the smallest radius a greedy method can guarantee (2x optimal).
//
// The textbook loop measures every point against every new centre (N x k distances), which is why
// coreset selection dominates PatchCore's training time. This implementation gives the same
// selection but skips most of that work with the triangle inequality: a new centre x can only take
// point i from its centre c if |x - c| < 2 |i - c|, so whole clusters whose radius is below
// |x - c| / 2 are never touched, and as centres accumulate nearly all of them are.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace pv::sampling {

struct KCenterOptions {
  std::int64_t centers = 1;  // how many points to select, 1..N
  std::uint64_t seed = 0;    // picks the first centre
  // Called after every selected centre with the number selected so far.
  std::function<void(std::int64_t)> on_progress;
};

struct KCenterResult {
  std::vector<std::int64_t> indices;  // selection order; indices[0] is the random start
  double covering_radius = 0;         // max over points of the distance to its nearest centre
};

// `points`: N x d, any float type; selection runs on the points rounded to bfloat16 (see the .cpp).
// Throws pv::Error for an empty input or an impossible count.
KCenterResult greedy_k_center(const at::Tensor& points, const KCenterOptions& options);

// The textbook loop, O(N k d), on the same bfloat16-rounded points: the reference the fast
// version is tested against.
KCenterResult greedy_k_center_naive(const at::Tensor& points, const KCenterOptions& options);

}  // namespace pv::sampling
