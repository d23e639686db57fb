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
//    The bounds prune well where the data has structure the clusters capture; on fine-grained
//    embeddings (patches about as far from one another as the clusters are wide) they leave most
//    points to measure, one dot product at a time. So a kFast round first asks a sample of its
//    centres how many points the bounds leave them: above dense_above of the points, the round
//    measures every point against all of its centres by blocks of products instead (int16
//    multiply-adds, blocks of points, one block a thread), the same rules on the same exact
//    numbers. Its time is then that of N x k x d multiply-adds whatever the data (measured on 200
//    images' fine-grained patches, 156,800 -> 15,680 centres: 63.6 s by the bounds, 13.2 s with
//    dense rounds in float32, the same centres).
//    Lazily: a dense round does not measure the points already well inside the floor ((1 - eps)
//    R, "frozen" below freeze_below of it): a point's distance only shrinks, so such a point
//    cannot be a centre before the floor comes down to the distance it has. Before each round,
//    the points whose (possibly stale) distance has reached the new floor are measured against
//    the centres they missed ("thawed"), so every point a round may choose, and the widest radius
//    the floor comes from, are exact; a point that stays below the floor to the end is never
//    measured against the later centres at all. The same centres as measuring every point, and
//    the same guarantee; the covering radius is settled the same way.
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
  // kFast: a round whose centres the bounds would leave to measure more than this fraction of
  // the points each (asked of a sample of them) measures every point by matrix products instead.
  // 0: every round; above 1: never. The selection's rules are the same either way.
  double dense_above = 0.1;
  // kFast dense rounds: points closer to their centre than this fraction of the round's floor
  // are frozen (not measured) until the floor comes down to them. 0: none.
  double freeze_below = 0.9;
  // Called after every centre (kExact) or round of centres (kFast) with the number so far.
  std::function<void(std::int64_t)> on_progress;
};

struct KCenterResult {
  std::vector<std::int64_t> indices;  // selection order; indices[0] is the random start
  double covering_radius = 0;         // max over points of the distance to its nearest centre
  std::int64_t dense_rounds = 0;      // rounds measured by matrix products (kFast)
  // Point-centre distances measured by matrix products (dense rounds and thawing); a dense
  // selection without freezing measures about points x centres of them.
  std::int64_t products = 0;
};

// `points`: N x d, any float type (taken as float32); selection runs on the points rounded to a
// fixed-point grid
// (k_center_grid(): 16-bit integer coordinates, a step of at most 1/16,000 of the longest point's
// length, far below the random projection's own distortion), where every distance is computed
// exactly, on int16 multiply-adds. Deterministic for a seed whatever the number of
// threads. Throws pv::Error for an empty input or an impossible count.
KCenterResult k_center(const at::Tensor& points, const KCenterOptions& options);

// Two selections in one, for cross-fitting (a bank without some images, then the bank of all):
// first `first_centers` centres among the points not `held_out` (one flag per point), the same
// k_center() picks from those points alone (same seed; their order kept); then the held-out points
// join the clusters of their nearest centres and the selection goes on from there, over all
// points, to options.centers. The second selection costs what the first one adds to it, instead
// of a selection from scratch (about 1.6x less work in all at a fifth held out).
// Guarantee of the whole: the first centres are pairwise at least (1 - eps) r1 apart, r1 the first
// covering radius, and the later ones (1 - eps) r from all earlier ones, r the final radius; when
// r <= r1 (held-out points of the same process: measured so), the factor is k_center()'s.
// Throws pv::Error when the flags do not fit or leave no point, or for impossible counts.
struct ContinuedKCenterResult {
  KCenterResult selection;           // indices: the first selection, then the rest
  std::int64_t first_centers = 0;    // how many of selection.indices are the first selection
  double first_covering_radius = 0;  // over the points not held out
  double first_seconds = 0;          // time to the first selection
};
ContinuedKCenterResult k_center_continued(const at::Tensor& points,
                                          const std::vector<bool>& held_out,
                                          std::int64_t first_centers,
                                          const KCenterOptions& options);

// The points as k_center() measures them: each coordinate rounded to a multiple of one step, a
// power of two, the finest on which the integers fit int16 and keep every dot product of two
// points exact in int32 (util/int16_products.h: int16_grid_step). float64 (exact), N x d.
at::Tensor k_center_grid(const at::Tensor& points);

// The textbook loop, O(N k d), on the same grid points, in float64: the reference k_center() is
// tested against.
KCenterResult greedy_k_center_naive(const at::Tensor& points, const KCenterOptions& options);

}  // namespace pv::sampling
