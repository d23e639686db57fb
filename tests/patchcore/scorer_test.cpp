#include "patchcore/scorer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

namespace pv::patchcore {
namespace {

// A bank and test images with no low-dimensional structure, so that a shortlist of a few
// components misses many patches' nearest neighbours; a few patches of each image far out (the
// defect the image score is about).
struct Data {
  at::Tensor bank;    // M x D
  at::Tensor images;  // B x h x w x D
};

Data gaussian(std::int64_t seed, at::ScalarType bank_type = at::kFloat) {
  at::manual_seed(seed);
  Data d{at::randn({2000, 48}).to(bank_type), at::randn({5, 6, 6, 48})};
  d.images.select(0, 1).select(0, 2).select(0, 3).mul_(1.6);
  d.images.select(0, 3).select(0, 0).select(0, 0).mul_(1.3);
  return d;
}

ScorerOptions options(SearchMethod method, int num_neighbors) {
  return {.num_neighbors = num_neighbors,
          .method = method,
          // The exact search in float32, as on a CPU without bfloat16 products: with them a
          // bfloat16 bank is measured in its own values, equal only to float32 rounding.
          .search = {.precision = search::Precision::kFloat32, .partition_min_size = 0},
          .shortlist = {.components = 3, .candidates = 4}};
}

// The shortlist's image scores are the exact search's, bit for bit, though many patches' nearest
// neighbours are missed; those patches' distances are only ever larger.
TEST(Scorer, AShortlistGivesTheExactImageScoresBitForBit) {
  at::set_num_threads(2);
  for (const auto bank_type : {at::kFloat, at::kBFloat16}) {
    const Data d = gaussian(11, bank_type);
    for (const int neighbors : {9, 1}) {
      const Scorer exact(d.bank, options(SearchMethod::kExact, neighbors));
      const Scorer shortlist(d.bank, options(SearchMethod::kShortlist, neighbors));
      EXPECT_EQ(exact.method(), SearchMethod::kExact);
      EXPECT_EQ(shortlist.method(), SearchMethod::kShortlist);
      const Scores want = exact.score(d.images);
      const Scores got = shortlist.score(d.images);
      EXPECT_TRUE(at::equal(got.image_scores, want.image_scores)) << neighbors;
      EXPECT_EQ(want.remeasured, 0);
      // At least one patch an image, not all (on such data the shortlist distances are poor:
      // on real embeddings 1-2 patches an image, bench/large_bank.sh).
      EXPECT_GE(got.remeasured, 5);
      EXPECT_LT(got.remeasured, 5 * 36);
      const at::Tensor larger = got.patch_distances >= want.patch_distances;
      EXPECT_TRUE(larger.all().item<bool>());
      // Misses there are (so this compares two different searches), and each image's largest
      // distance is exact.
      EXPECT_FALSE(at::equal(got.patch_distances, want.patch_distances));
      EXPECT_TRUE(at::equal(got.patch_distances.flatten(1).amax(1),
                            want.patch_distances.flatten(1).amax(1)));
    }
  }
}

// Ties of the largest distance: the first patch at it is s*, as with the exact search (the same
// m*, so the same re-weighting).
TEST(Scorer, AShortlistBreaksTiesOfTheLargestDistanceAsTheExactSearch) {
  at::set_num_threads(2);
  Data d = gaussian(12);
  // Image 0's patches 4 and 30 are the same far-out vector.
  d.images[0][0][4].copy_(d.images[0][0][4] * 2);
  d.images[0][5][0].copy_(d.images[0][0][4]);
  const Scores want = Scorer(d.bank, options(SearchMethod::kExact, 9)).score(d.images);
  const Scores got = Scorer(d.bank, options(SearchMethod::kShortlist, 9)).score(d.images);
  EXPECT_TRUE(at::equal(got.image_scores, want.image_scores));
  EXPECT_EQ(got.patch_distances[0].flatten().argmax().item<std::int64_t>(), 4);
}

TEST(Scorer, AutoChoosesByTheBank) {
  const Data d = gaussian(13);
  // A bank far below kShortlistMinSize: exact; from it on, the shortlist, on any CPU.
  EXPECT_EQ(Scorer(d.bank, options(SearchMethod::kAuto, 9)).method(), SearchMethod::kExact);
  EXPECT_EQ(resolve_search_method(SearchMethod::kAuto, kShortlistMinSize - 1),
            SearchMethod::kExact);
  EXPECT_EQ(resolve_search_method(SearchMethod::kAuto, kShortlistMinSize),
            SearchMethod::kShortlist);
  EXPECT_EQ(resolve_search_method(SearchMethod::kShortlist, 10), SearchMethod::kShortlist);
  EXPECT_EQ(resolve_search_method(SearchMethod::kExact, 1'000'000), SearchMethod::kExact);
}

}  // namespace
}  // namespace pv::patchcore
