#include <cmath>
#include <limits>
#include <set>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <patchvec/error.h>

#include "sampling/k_center_greedy.h"
#include "sampling/random_projection.h"

namespace pv::sampling {
namespace {

at::Tensor clustered_points(std::int64_t count, std::int64_t dim, std::int64_t seed) {
  at::manual_seed(seed);
  const at::Tensor centres = at::randn({20, dim}) * 4;
  const at::Tensor which = at::randint(0, 20, {count}, at::kLong);
  return (centres.index_select(0, which) + at::randn({count, dim})).contiguous();
}

// Covering radius measured from scratch: max over points of the distance to the nearest centre.
double covering_radius(const at::Tensor& points, const std::vector<std::int64_t>& indices) {
  const at::Tensor centres =
      points.index_select(0, at::tensor(std::vector<std::int64_t>(indices), at::kLong));
  return at::cdist(points.to(at::kDouble), centres.to(at::kDouble)).amin(1).max().item<double>();
}

TEST(JohnsonLindenstrauss, MatchesSklearnsFormula) {
  // sklearn.random_projection.johnson_lindenstrauss_min_dim(78400, eps=0.9) == 278
  EXPECT_EQ(johnson_lindenstrauss_dim(78400), 278);
  EXPECT_EQ(johnson_lindenstrauss_dim(219520), 303);
  EXPECT_EQ(johnson_lindenstrauss_dim(1000, 0.5), 331);
}

TEST(RandomProjection, IsSparseSeededAndPreservesDistancesRoughly) {
  const RandomProjection a(1536, 300, 7), b(1536, 300, 7), c(1536, 300, 8);
  const at::Tensor x = at::randn({200, 1536});
  EXPECT_TRUE(at::equal(a.apply(x), b.apply(x)));
  EXPECT_FALSE(at::equal(a.apply(x), c.apply(x)));
  const at::Tensor original = at::pdist(x);
  const at::Tensor projected = at::pdist(a.apply(x));
  const at::Tensor ratio = projected / original;
  EXPECT_NEAR(ratio.mean().item<double>(), 1.0, 0.05);
  EXPECT_LT((ratio - 1).abs().max().item<double>(), 0.5);
}

TEST(KCenterGreedy, SameSelectionAsTheTextbookLoop) {
  at::set_num_threads(2);
  const at::Tensor points = clustered_points(5000, 24, 1);
  const KCenterOptions options{.centers = 500, .seed = 3};
  const KCenterResult exact = k_center(points, options);
  const KCenterResult naive = greedy_k_center_naive(points, options);
  ASSERT_EQ(exact.indices.size(), 500u);
  // Both break exact ties differently and round differently; on continuous data they agree.
  std::size_t same_prefix = 0;
  while (same_prefix < 500 && exact.indices[same_prefix] == naive.indices[same_prefix])
    ++same_prefix;
  EXPECT_GE(same_prefix, 450u);
  EXPECT_NEAR(exact.covering_radius, naive.covering_radius, 1e-3 * naive.covering_radius);
  const at::Tensor rounded = k_center_grid(points);  // what selection works on
  EXPECT_NEAR(exact.covering_radius, covering_radius(rounded, exact.indices),
              1e-3 * naive.covering_radius);
  // On the original points the rounding moves the radius by well under 1 %.
  EXPECT_NEAR(exact.covering_radius, covering_radius(points, exact.indices),
              1e-2 * naive.covering_radius);
}

TEST(KCenterGreedy, StartsAtTheSeededPointAndNeverRepeats) {
  const at::Tensor points = clustered_points(2000, 8, 2);
  const KCenterResult result = k_center(points, {.centers = 300, .seed = 11});
  const KCenterResult again = k_center(points, {.centers = 300, .seed = 11});
  EXPECT_EQ(result.indices, again.indices);
  EXPECT_EQ(std::set<std::int64_t>(result.indices.begin(), result.indices.end()).size(), 300u);
  EXPECT_NE(k_center(points, {.centers = 300, .seed = 12}).indices[0], result.indices[0]);
}

TEST(KCenterGreedy, CoveringRadiusShrinksWithMoreCentres) {
  const at::Tensor points = clustered_points(3000, 16, 3);
  double previous = 1e30;
  for (const std::int64_t centres : {10, 100, 1000}) {
    const double radius = k_center(points, {.centers = centres}).covering_radius;
    EXPECT_LT(radius, previous);
    previous = radius;
  }
}

TEST(KCenterGreedy, AllPointsIsTheWholeSetWithRadiusZero) {
  const at::Tensor points = at::randn({50, 4});
  const KCenterResult all = k_center(points, {.centers = 50});
  EXPECT_EQ(std::set<std::int64_t>(all.indices.begin(), all.indices.end()).size(), 50u);
  EXPECT_EQ(all.covering_radius, 0.0);
}

TEST(KCenterGreedy, DuplicatePointsStillGiveTheRequestedCount) {
  const at::Tensor points = at::cat({at::ones({30, 3}), at::zeros({30, 3})});
  const KCenterResult result = k_center(points, {.centers = 10});
  EXPECT_EQ(std::set<std::int64_t>(result.indices.begin(), result.indices.end()).size(), 10u);
  EXPECT_EQ(result.covering_radius, 0.0);
}

TEST(KCenterGreedy, ReportsProgress) {
  std::int64_t last = 0;
  k_center(at::randn({100, 4}), {.centers = 20, .on_progress = [&](std::int64_t n) { last = n; }});
  EXPECT_EQ(last, 20);
}

// The fast method's guarantee (k_center_greedy.h): its covering radius r_fast is within
// 2 / (1 - eps) of the optimum, which the exact greedy's radius bounds from above; and the proof's
// premise, checked directly: every centre was at least (1 - eps) r_fast from all earlier ones.
TEST(KCenterFast, WithinTheProvenFactorOfExact) {
  at::set_num_threads(2);
  constexpr double kEpsilon = 0.05;
  // Rounds measured by the bounds and by matrix products (dense_above 2 and 0): the same rules.
  for (const auto& [seed, dense_above] :
       std::vector<std::pair<std::int64_t, double>>{{1, 2.0}, {2, 2.0}, {3, 2.0}, {1, 0.0}}) {
    const at::Tensor points = clustered_points(6000, 24, seed);
    const KCenterOptions exact{.centers = 600, .seed = 5};
    KCenterOptions fast = exact;
    fast.method = CoresetMethod::kFast;
    fast.dense_above = dense_above;
    const KCenterResult a = k_center(points, exact);
    const KCenterResult b = k_center(points, fast);
    EXPECT_EQ(b.dense_rounds > 0, dense_above == 0.0);
    ASSERT_EQ(b.indices.size(), 600u);
    EXPECT_EQ(std::set<std::int64_t>(b.indices.begin(), b.indices.end()).size(), 600u);
    EXPECT_LE(b.covering_radius, 2 / (1 - kEpsilon) * a.covering_radius);
    // In practice it is far closer than the bound (the 5 % the issue asks for on real data).
    EXPECT_LE(b.covering_radius, 1.05 * a.covering_radius) << "seed " << seed;
    const at::Tensor rounded = k_center_grid(points);
    EXPECT_NEAR(b.covering_radius, covering_radius(rounded, b.indices), 1e-3 * b.covering_radius);
    const at::Tensor centres = rounded.index_select(0, at::tensor(b.indices, at::kLong));
    const at::Tensor gaps = at::cdist(centres, centres);
    for (std::int64_t j = 1; j < 600; ++j) {
      const double nearest_earlier = gaps[j].narrow(0, 0, j).min().item<double>();
      EXPECT_GE(nearest_earlier, (1 - kEpsilon) * b.covering_radius * (1 - 1e-4)) << "centre " << j;
    }
  }
}

TEST(KCenterFast, DeterministicForASeedWhateverTheThreads) {
  const at::Tensor points = clustered_points(20000, 16, 4);
  for (const double dense_above : {2.0, 0.0}) {
    const KCenterOptions options{
        .centers = 2000, .seed = 9, .method = CoresetMethod::kFast, .dense_above = dense_above};
    at::set_num_threads(2);
    const KCenterResult two = k_center(points, options);
    const KCenterResult again = k_center(points, options);
    at::set_num_threads(1);
    const KCenterResult one = k_center(points, options);
    at::set_num_threads(2);
    EXPECT_EQ(two.indices, again.indices);
    EXPECT_EQ(two.indices, one.indices);
    EXPECT_EQ(two.covering_radius, one.covering_radius);
    KCenterOptions other = options;
    other.seed = 10;
    EXPECT_NE(k_center(points, other).indices, two.indices);
  }
}

// Where every distance is exact in float32 (small integer coordinates: exact in bfloat16, their
// products and sums exact too), the bounds and the matrix products measure the same numbers, so
// the two ways of running a round choose the same centres, ties included.
TEST(KCenterFast, DenseRoundsChooseWhatTheBoundsChoose) {
  at::set_num_threads(2);
  at::manual_seed(21);
  const at::Tensor centres = at::randint(-12, 13, {30, 20}).to(at::kFloat);
  const at::Tensor which = at::randint(0, 30, {8000}, at::kLong);
  const at::Tensor points =
      (centres.index_select(0, which) + at::randint(-3, 4, {8000, 20}).to(at::kFloat)).contiguous();
  KCenterOptions options{.centers = 900, .seed = 2, .method = CoresetMethod::kFast};
  options.dense_above = 2.0;
  const KCenterResult bounded = k_center(points, options);
  options.dense_above = 0.0;
  const KCenterResult dense = k_center(points, options);
  options.dense_above = 0.1;  // the default: some rounds each way, or all of one
  const KCenterResult mixed = k_center(points, options);
  EXPECT_EQ(bounded.dense_rounds, 0);
  EXPECT_GT(dense.dense_rounds, 0);
  EXPECT_EQ(dense.indices, bounded.indices);
  EXPECT_EQ(dense.covering_radius, bounded.covering_radius);
  EXPECT_EQ(mixed.indices, bounded.indices);
  EXPECT_NEAR(bounded.covering_radius, covering_radius(points, bounded.indices), 1e-9);
}

// Dense rounds that freeze the points well inside the floor measure fewer products and choose
// the same centres as measuring every point (exact arithmetic, as above: ties included), alone
// and continued; the covering radius they report is the exact one.
TEST(KCenterFast, FreezingPointsSkipsProductsNotCentres) {
  at::set_num_threads(2);
  at::manual_seed(23);
  const at::Tensor centres = at::randint(-12, 13, {30, 20}).to(at::kFloat);
  const at::Tensor which = at::randint(0, 30, {8000}, at::kLong);
  const at::Tensor points =
      (centres.index_select(0, which) + at::randint(-3, 4, {8000, 20}).to(at::kFloat)).contiguous();
  std::vector<bool> held_out(8000, false);
  for (std::int64_t i = 0; i < 8000; ++i) held_out[i] = (i / 40) % 5 == 0;
  KCenterOptions options{
      .centers = 900, .seed = 3, .method = CoresetMethod::kFast, .dense_above = 0.0};
  options.freeze_below = 0.0;
  const KCenterResult every = k_center(points, options);
  const ContinuedKCenterResult every_continued = k_center_continued(points, held_out, 700, options);
  EXPECT_GT(every.dense_rounds, 0);
  for (const double freeze_below : {0.9, 1.0}) {
    options.freeze_below = freeze_below;
    const KCenterResult lazy = k_center(points, options);
    EXPECT_EQ(lazy.indices, every.indices) << freeze_below;
    EXPECT_EQ(lazy.covering_radius, every.covering_radius);
    EXPECT_NEAR(lazy.covering_radius, covering_radius(points, lazy.indices), 1e-9);
    EXPECT_LT(lazy.products, every.products * 9 / 10) << freeze_below;
    const ContinuedKCenterResult continued = k_center_continued(points, held_out, 700, options);
    EXPECT_EQ(continued.selection.indices, every_continued.selection.indices);
    EXPECT_EQ(continued.first_covering_radius, every_continued.first_covering_radius);
    EXPECT_EQ(continued.selection.covering_radius, every_continued.selection.covering_radius);
    EXPECT_LT(continued.selection.products, every_continued.selection.products);
  }
}

// Cross-fitting's two selections in one (k_center_continued): the first is k_center() of the
// kept points alone, exactly; the whole is a selection over all points with the fast method's
// premise intact and its covering radius what it says.
TEST(KCenterContinued, FirstIsTheSelectionWithoutTheHeldOutThenAllAreTakenIn) {
  at::set_num_threads(2);
  constexpr double kEpsilon = 0.05;
  const at::Tensor points = clustered_points(7000, 24, 6);
  std::vector<bool> held_out(7000, false);
  std::vector<std::int64_t> kept;
  for (std::int64_t i = 0; i < 7000; ++i) {
    held_out[i] = (i / 50) % 5 == 0;  // every fifth "image" of 50 points
    if (!held_out[i]) kept.push_back(i);
  }
  const at::Tensor kept_points = points.index_select(0, at::tensor(kept, at::kLong));
  for (const CoresetMethod method : {CoresetMethod::kFast, CoresetMethod::kExact}) {
    for (const double dense_above : {2.0, 0.0}) {
      const KCenterOptions options{
          .centers = 700, .seed = 4, .method = method, .dense_above = dense_above};
      KCenterOptions alone = options;
      alone.centers = 560;
      const KCenterResult first = k_center(kept_points, alone);
      const ContinuedKCenterResult both = k_center_continued(points, held_out, 560, options);
      ASSERT_EQ(both.first_centers, 560);
      std::vector<std::int64_t> mapped;
      for (const auto i : first.indices) mapped.push_back(kept[i]);
      EXPECT_EQ(std::vector<std::int64_t>(both.selection.indices.begin(),
                                          both.selection.indices.begin() + 560),
                mapped);
      // The same centres; a dense round's products group the rows in other blocks here (the
      // held-out rows among them), which may move a distance's last bit.
      EXPECT_NEAR(both.first_covering_radius, first.covering_radius, 1e-5 * first.covering_radius);

      const auto& indices = both.selection.indices;
      ASSERT_EQ(indices.size(), 700u);
      EXPECT_EQ(std::set<std::int64_t>(indices.begin(), indices.end()).size(), 700u);
      const at::Tensor rounded = k_center_grid(points);
      const double r = both.selection.covering_radius;
      EXPECT_NEAR(r, covering_radius(rounded, indices), 1e-3 * r);
      EXPECT_LE(r, both.first_covering_radius);  // held-out points of the same process
      const KCenterResult scratch = k_center(points, options);
      EXPECT_LE(r, 1.05 * scratch.covering_radius);
      const double eps = method == CoresetMethod::kFast ? kEpsilon : 0.0;
      const at::Tensor centres = rounded.index_select(0, at::tensor(indices, at::kLong));
      const at::Tensor gaps = at::cdist(centres, centres);
      for (std::int64_t j = 1; j < 700; ++j) {
        const double nearest_earlier = gaps[j].narrow(0, 0, j).min().item<double>();
        const double radius = j < 560 ? both.first_covering_radius : r;
        EXPECT_GE(nearest_earlier, (1 - eps) * radius * (1 - 1e-4)) << "centre " << j;
      }
    }
  }
}

TEST(KCenterContinued, ImpossibleRequestsAreErrors) {
  const at::Tensor points = at::randn({20, 3});
  const KCenterOptions options{.centers = 5, .method = CoresetMethod::kFast};
  std::vector<bool> some(20, false);
  some[3] = true;
  EXPECT_THROW(k_center_continued(points, std::vector<bool>(19, false), 2, options), Error);
  EXPECT_THROW(k_center_continued(points, std::vector<bool>(20, true), 2, options), Error);
  EXPECT_THROW(k_center_continued(points, some, 0, options), Error);
  EXPECT_THROW(k_center_continued(points, some, 6, options), Error);
  EXPECT_EQ(k_center_continued(points, some, 5, options).selection.indices.size(), 5u);
}

TEST(KCenterFast, EdgeCasesAsExact) {
  for (const CoresetMethod method : {CoresetMethod::kExact, CoresetMethod::kFast}) {
    const KCenterResult dense =
        k_center(at::randn({40, 4}), {.centers = 40, .method = method, .dense_above = 0});
    EXPECT_EQ(std::set<std::int64_t>(dense.indices.begin(), dense.indices.end()).size(), 40u);
    EXPECT_EQ(dense.covering_radius, 0.0);
    const KCenterResult all = k_center(at::randn({50, 4}), {.centers = 50, .method = method});
    EXPECT_EQ(std::set<std::int64_t>(all.indices.begin(), all.indices.end()).size(), 50u);
    EXPECT_EQ(all.covering_radius, 0.0);
    const at::Tensor duplicates = at::cat({at::ones({30, 3}), at::zeros({30, 3})});
    const KCenterResult some = k_center(duplicates, {.centers = 10, .method = method});
    EXPECT_EQ(std::set<std::int64_t>(some.indices.begin(), some.indices.end()).size(), 10u);
    EXPECT_EQ(some.covering_radius, 0.0);
    const KCenterResult one = k_center(at::randn({7, 2}), {.centers = 1, .method = method});
    EXPECT_EQ(one.indices.size(), 1u);
    std::int64_t last = 0;
    k_center(at::randn({3000, 4}),
             {.centers = 300, .method = method, .on_progress = [&](std::int64_t n) { last = n; }});
    EXPECT_EQ(last, 300);
  }
}

TEST(CoresetMethod, NamesAndParsing) {
  EXPECT_STREQ(coreset_method_name(CoresetMethod::kFast), "fast");
  EXPECT_EQ(parse_coreset_method("exact", "--coreset"), CoresetMethod::kExact);
  try {
    parse_coreset_method("quick", "--coreset");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--coreset is 'quick', not exact or fast");
  }
}

TEST(KCenterGreedy, ImpossibleRequestsAreErrors) {
  EXPECT_THROW(k_center(at::randn({10, 3}), {.centers = 11}), Error);
  EXPECT_THROW(k_center(at::randn({10, 3}), {.centers = 0}), Error);
  EXPECT_THROW(k_center(at::empty({0, 3}), {.centers = 1}), Error);
  at::Tensor damaged = at::randn({10, 3});
  damaged[4][1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(k_center(damaged, {.centers = 2}), Error);
}

// The grid k_center() measures on: a power-of-two step, the points rounded to its nearest
// multiple, the integers within int16 and every rounded point shorter than sqrt(2^31) (so that
// any two points' product is exact in int32), and no finer step would keep both.
TEST(KCenterGrid, RoundsToThePowerOfTwoStepThatKeepsProductsExact) {
  at::manual_seed(5);
  for (const std::int64_t dim : {3, 24, 295}) {
    at::Tensor points = at::randn({400, dim}) * 37.5;
    points[7][0] = 900;  // one large coordinate, which binds in few dimensions only
    const at::Tensor grid = k_center_grid(points);
    ASSERT_EQ(grid.sizes(), points.sizes());
    // The rule (int16_grid_step): the coarser of what the coordinates and the lengths need.
    const at::Tensor exact = points.to(at::kDouble);
    const double needed =
        std::max(exact.abs().max().item<double>() / 32767,
                 exact.pow(2).sum(1).max().sqrt().item<double>() /
                     (46340 - std::sqrt(static_cast<double>(dim + dim % 2)) / 2 - 1));
    const double step = std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(needed))));
    const at::Tensor units = grid / step;
    EXPECT_TRUE(at::equal(units, units.round())) << dim;
    const double largest = units.abs().max().item<double>();
    const double longest = units.pow(2).sum(1).max().sqrt().item<double>();
    EXPECT_LE(largest, 32767);
    EXPECT_LT(longest * longest, 2147483648.0);
    // Half the step would break one of them (up to the rounding's room).
    EXPECT_TRUE(largest * 2 > 32767 - 2 || longest * 2 > 46340 - std::sqrt(dim) - 2) << dim;
    EXPECT_LE((grid - points.to(at::kDouble)).abs().max().item<double>(), step / 2 * (1 + 1e-9));
  }
  EXPECT_TRUE(at::equal(k_center_grid(at::zeros({3, 2})), at::zeros({3, 2}, at::kDouble)));
}

}  // namespace
}  // namespace pv::sampling
