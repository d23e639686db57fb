// Greedy k-center selection (Gonzalez 1985): start from one point, then repeatedly add the point
// farthest from every centre chosen so far. PatchCore keeps these points as its memory bank: they
// cover the training patches with a radius at most twice the smallest possible.
//
// The textbook loop measures every point against every new centre (N x k distances) and every
// new centre against every centre. Here a new centre x only measures the points it can take: x can
// take point i from its centre c only if |x - c| < 2 |i - c|, so whole clusters whose radius is
// below |x - c| / 2 are never touched; and centres are filed under the nearest of the first 256
// ("regions"), so that x skips whole regions by the same inequality instead of measuring its
// distance to all of them. Both methods run on this structure:
//  - kExact adds one centre at a time: the textbook selection (ties aside).
//  - kFast adds centres in rounds: the widest clusters' farthest points, each kept when it is at
//    least (1 - eps) R from every centre (those kept before it in the round included), R the
//    farthest distance when the round starts; eps = 0.05. A round's centres are measured against
//    the clusters in parallel, with one barrier per round instead of per centre.
//    Guarantee: every centre was at least (1 - eps) r from all earlier ones when it was chosen,
//    r the final covering radius, so k + 1 points are pairwise (1 - eps) r apart and any k balls
//    covering them need a radius of (1 - eps) r / 2: the covering radius is within 2 / (1 - eps)
//    of the optimum (exact: 2).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

#include <patchvec/coreset.h>

namespace pv::sampling {

struct KCenterOptions {
  std::int64_t centers = 1;                      // how many points to select, 1..N
  std::uint64_t seed = 0;                        // picks the first centre
  CoresetMethod method = CoresetMethod::kExact;  // for k_center()
  // Called after every centre (kExact) or round of centres (kFast) with the number so far.
  std::function<void(std::int64_t)> on_progress;
};

struct KCenterResult {
  std::vector<std::int64_t> indices;  // selection order; indices[0] is the random start
  double covering_radius = 0;         // max over points of the distance to its nearest centre
};

// `points`: N x d, any float type; selection runs on the points rounded to bfloat16 (their
// rounding, 2^-8 relative, is far below the random projection's distortion). Deterministic for a
// seed whatever the number of threads. Throws pv::Error for an empty input or an impossible count.
KCenterResult k_center(const at::Tensor& points, const KCenterOptions& options);

// The textbook loop, O(N k d), on the same bfloat16-rounded points: the reference k_center() is
// tested against.
KCenterResult greedy_k_center_naive(const at::Tensor& points, const KCenterOptions& options);

}  // namespace pv::sampling
