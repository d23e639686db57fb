#include "search/exact_search.h"

#include <limits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/system.h>

namespace pv::search {
namespace {

// Brute force in float64: the ground truth.
Neighbors brute_force(const at::Tensor& bank, const at::Tensor& queries, int k) {
  const at::Tensor d = at::cdist(queries.to(at::kDouble), bank.to(at::kDouble));
  auto [values, indices] = d.topk(k, 1, /*largest=*/false);
  return {values.to(at::kFloat), indices};
}

// Post-ReLU CNN features: non-negative, correlated, with a large common offset, which is what
// makes a naive low-precision distance useless.
at::Tensor feature_like(std::int64_t rows, std::int64_t dim, std::int64_t seed) {
  at::manual_seed(seed);
  const at::Tensor basis = at::randn({32, dim});
  return at::relu(at::randn({rows, 32}).mm(basis) * 0.3 + 1.0);
}

void expect_exact(const Neighbors& actual, const Neighbors& expected) {
  ASSERT_EQ(actual.distances.sizes(), expected.distances.sizes());
  const at::Tensor relative =
      (actual.distances - expected.distances).abs() / expected.distances.clamp_min(1e-6);
  EXPECT_LT(relative.max().item<float>(), 1e-4);
  // Same neighbours wherever the true distances are not (near) ties.
  const at::Tensor gaps = expected.distances.narrow(1, 0, 1);
  const auto same = (actual.indices == expected.indices);
  const double agreement = same.to(at::kFloat).mean().item<double>();
  EXPECT_GT(agreement, 0.999) << "fraction of identical neighbour indices";
}

struct Case {
  Precision precision;
  int k;
  std::int64_t dim;
};

class ExactSearchMatchesBruteForce : public ::testing::TestWithParam<Case> {};

TEST_P(ExactSearchMatchesBruteForce, OnFeatureLikeData) {
  at::set_num_threads(2);
  const auto [precision, k, dim] = GetParam();
  const at::Tensor bank = feature_like(3000, dim, 1);
  const at::Tensor queries = feature_like(300, dim, 2);
  const ExactSearch search(bank, {.precision = precision});
  expect_exact(search.search(queries, k), brute_force(bank, queries, k));
}

TEST_P(ExactSearchMatchesBruteForce, OnGaussianData) {
  at::set_num_threads(2);
  const auto [precision, k, dim] = GetParam();
  at::manual_seed(3);
  const at::Tensor bank = at::randn({2000, dim});
  const at::Tensor queries = at::randn({100, dim});
  const ExactSearch search(bank, {.precision = precision});
  expect_exact(search.search(queries, k), brute_force(bank, queries, k));
}

INSTANTIATE_TEST_SUITE_P(
    Precisions, ExactSearchMatchesBruteForce,
    ::testing::Values(Case{Precision::kFloat32, 1, 1536}, Case{Precision::kBFloat16, 1, 1536},
                      Case{Precision::kFloat32, 9, 384}, Case{Precision::kBFloat16, 9, 384},
                      Case{Precision::kBFloat16, 1, 7}, Case{Precision::kInt16, 1, 1536},
                      Case{Precision::kInt16, 9, 384}, Case{Precision::kInt16, 1, 7}),
    [](const auto& info) {
      const Precision p = info.param.precision;
      return std::string(p == Precision::kFloat32    ? "f32"
                         : p == Precision::kBFloat16 ? "bf16"
                                                     : "int16") +
             "_k" + std::to_string(info.param.k) + "_d" + std::to_string(info.param.dim);
    });

// A bank kept in bfloat16 (reduced-precision models): exact to those values widened to float32,
// with either first pass, and no float32 copy of it kept.
TEST(ExactSearch, ABfloat16BankIsSearchedExactly) {
  at::set_num_threads(2);
  const at::Tensor bank = feature_like(3000, 384, 4).to(at::kBFloat16);
  const at::Tensor queries = feature_like(200, 384, 5);
  for (const Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    const ExactSearch search(bank, {.precision = precision});
    EXPECT_EQ(search.size(), 3000);
    EXPECT_EQ(search.dim(), 384);
    expect_exact(search.search(queries, 3), brute_force(bank.to(at::kFloat), queries, 3));
  }
}

TEST(ExactSearch, QueryInTheBankFindsItself) {
  const at::Tensor bank = feature_like(500, 64, 4);
  const ExactSearch search(bank, {.precision = Precision::kBFloat16});
  const Neighbors found = search.search(bank.narrow(0, 100, 20), 1);
  EXPECT_TRUE(at::equal(found.indices.squeeze(1), at::arange(100, 120, at::kLong)));
  EXPECT_LT(found.distances.max().item<float>(), 1e-3);
}

TEST(ExactSearch, SmallBlocksGiveTheSameAnswer) {
  const at::Tensor bank = feature_like(800, 96, 5);
  const at::Tensor queries = feature_like(50, 96, 6);
  const Neighbors whole = ExactSearch(bank).search(queries, 3);
  const Neighbors blocked = ExactSearch(bank, {.max_block_bytes = 1000}).search(queries, 3);
  EXPECT_TRUE(at::equal(whole.indices, blocked.indices));
  EXPECT_TRUE(at::allclose(whole.distances, blocked.distances));
}

TEST(ExactSearch, KEqualToBankSizeSortsEverything) {
  const at::Tensor bank = at::randn({5, 4});
  const Neighbors all = ExactSearch(bank).search(bank.narrow(0, 0, 1), 5);
  EXPECT_TRUE(at::equal(std::get<0>(all.indices.sort(1)), at::arange(5, at::kLong).unsqueeze(0)));
  EXPECT_TRUE(at::equal(all.distances, std::get<0>(all.distances.sort(1))));
}

TEST(ExactSearch, DistancesThatOverflowStillGiveKNeighbours) {
  // Found by the model_file fuzz target: a vector so far away that its squared distance is
  // infinite in float32 was never kept, and the search read past the k it had.
  for (const Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    at::Tensor bank = at::randn({6, 4});
    bank[5].fill_(3e19f);
    const Neighbors all =
        ExactSearch(bank, {.precision = precision}).search(bank.narrow(0, 0, 2), 6);
    ASSERT_EQ(all.indices.size(1), 6);
    for (std::int64_t q = 0; q < 2; ++q) {
      EXPECT_TRUE(at::equal(std::get<0>(all.indices[q].sort()), at::arange(6, at::kLong)));
      EXPECT_EQ(all.indices[q][5].item<std::int64_t>(), 5);  // the far one last
    }
  }
}

// A partitioned bank gives the whole bank's answer bit for bit: the same distances, the same
// neighbours, ties (duplicated vectors) broken by the lower index, for either first pass and a
// bank kept in bfloat16, in small blocks too; cluster by cluster (whole_search_above 2) and when
// the bounds leave too much of the bank and blocks fall back to the whole search (0).
TEST(ExactSearch, APartitionedBankGivesTheWholeBanksAnswer) {
  at::set_num_threads(2);
  at::Tensor bank = feature_like(2000, 96, 7);
  bank.narrow(0, 1500, 50).copy_(bank.narrow(0, 100, 50));  // ties
  const at::Tensor queries = at::cat({feature_like(200, 96, 8), bank.narrow(0, 90, 20)});
  for (const bool half : {false, true}) {
    const at::Tensor stored = half ? bank.to(at::kBFloat16) : bank;
    for (const Precision precision :
         {Precision::kFloat32, Precision::kBFloat16, Precision::kInt16}) {
      const ExactSearch whole(stored, {.precision = precision, .partition_min_size = 0});
      for (const std::int64_t block : {std::int64_t{256} << 20, std::int64_t{5000}}) {
        for (const double above : {2.0, 0.0}) {
          const ExactSearch parted(stored, {.precision = precision,
                                            .max_block_bytes = block,
                                            .partition_min_size = 1000,
                                            .cluster_size = 32,
                                            .whole_search_above = above});
          ASSERT_EQ(whole.clusters(), 0);
          ASSERT_GT(parted.clusters(), 40);
          for (const int k : {1, 9}) {
            const Neighbors expected = whole.search(queries, k);
            const Neighbors actual = parted.search(queries, k);
            EXPECT_TRUE(at::equal(actual.indices, expected.indices))
                << "half " << half << " k " << k << " above " << above;
            EXPECT_TRUE(at::equal(actual.distances, expected.distances));
          }
        }
      }
      // The caller's bank is left as it was (the search keeps its own, reordered).
      EXPECT_TRUE(at::equal(stored, half ? bank.to(at::kBFloat16) : bank));
    }
  }
  // Brute force agrees as well (away from the ties), and a duplicated vector finds the lower
  // index first.
  const SearchOptions by_clusters{
      .partition_min_size = 1000, .cluster_size = 32, .whole_search_above = 2};
  const ExactSearch parted(bank, by_clusters);
  const at::Tensor unique = bank.narrow(0, 0, 1500);
  const at::Tensor fresh = queries.narrow(0, 0, 200);
  expect_exact(ExactSearch(unique, by_clusters).search(fresh, 3), brute_force(unique, fresh, 3));
  const Neighbors self = parted.search(bank.narrow(0, 1500, 50), 2);
  EXPECT_TRUE(at::equal(self.indices.select(1, 0), at::arange(100, 150, at::kLong)));
  EXPECT_TRUE(at::equal(self.indices.select(1, 1), at::arange(1500, 1550, at::kLong)));
}

// Vectors far out (squared distances that overflow float32) and k as large as the bank.
TEST(ExactSearch, APartitionedBankKeepsFarVectorsAndLargeK) {
  at::Tensor bank = feature_like(600, 16, 9);
  bank.narrow(0, 590, 10).fill_(3e19f);
  const ExactSearch parted(bank,
                           {.partition_min_size = 100, .cluster_size = 8, .whole_search_above = 2});
  ASSERT_GT(parted.clusters(), 0);
  const Neighbors all = parted.search(bank.narrow(0, 0, 3), 600);
  for (std::int64_t q = 0; q < 3; ++q) {
    EXPECT_TRUE(at::equal(std::get<0>(all.indices[q].sort()), at::arange(600, at::kLong)));
  }
  const Neighbors whole = ExactSearch(bank, {.partition_min_size = 0}).search(bank, 4);
  const Neighbors actual = parted.search(bank, 4);
  EXPECT_TRUE(at::equal(actual.indices, whole.indices));
}

// The whole bank's products on int16 grids give the float32 first pass's answer bit for bit:
// vectors of very different lengths (a short one's grid error is large against its length),
// near-ties far closer than a grid step, an odd dimension, blocks of one query. A block holding a
// NaN goes through float32 products; a bank holding one cannot be put on a grid.
TEST(ExactSearch, Int16ProductsGiveTheFloat32Answer) {
  at::set_num_threads(2);
  const std::int64_t dim = 97;
  at::Tensor bank = feature_like(1500, dim, 11);
  bank.narrow(0, 0, 100).mul_(1e-3);  // short vectors
  bank.narrow(0, 100, 10).mul_(50);   // long ones set the grid's step
  at::manual_seed(12);
  bank.narrow(0, 1000, 40).copy_(bank[200].unsqueeze(0) + 1e-6 * at::randn({40, dim}));
  // Far queries (a coarse grid of their own) too.
  const at::Tensor queries = at::cat({feature_like(150, dim, 13), bank.narrow(0, 195, 10) + 1e-5,
                                      bank.narrow(0, 0, 20) * 1.01, bank.narrow(0, 300, 20) * 30});
  const ExactSearch want(bank, {.precision = Precision::kFloat32, .partition_min_size = 0});
  for (const std::int64_t bytes : {std::int64_t{256} << 20, std::int64_t{1500 * 4}}) {
    const ExactSearch got(
        bank, {.precision = Precision::kInt16, .max_block_bytes = bytes, .partition_min_size = 0});
    ASSERT_EQ(got.precision(), Precision::kInt16);
    for (const int k : {1, 5}) {
      const Neighbors a = got.search(queries, k);
      const Neighbors b = want.search(queries, k);
      EXPECT_TRUE(at::equal(a.indices, b.indices)) << "k " << k << ", " << bytes << " bytes";
      EXPECT_TRUE(at::equal(a.distances, b.distances)) << "k " << k << ", " << bytes << " bytes";
    }
  }
  at::Tensor with_nan = queries.clone();
  with_nan[3][5] = std::numeric_limits<float>::quiet_NaN();
  const ExactSearch got(bank, {.precision = Precision::kInt16, .partition_min_size = 0});
  const Neighbors a = got.search(with_nan, 2);
  const Neighbors b = want.search(with_nan, 2);
  EXPECT_TRUE(at::equal(a.indices, b.indices));
  EXPECT_TRUE(at::equal(a.distances.narrow(0, 4, 100), b.distances.narrow(0, 4, 100)));
  // auto takes int16 on CPUs with AVX2 and without bfloat16 products, and float32 for a bank
  // with values off any grid.
  at::Tensor broken = bank.clone();
  broken[7][1] = std::numeric_limits<float>::infinity();
  if (!cpu_has_native_bf16()) {
    EXPECT_EQ(ExactSearch(bank, {.partition_min_size = 0}).precision(),
              cpu_has_avx2() ? Precision::kInt16 : Precision::kFloat32);
    EXPECT_EQ(ExactSearch(broken, {.partition_min_size = 0}).precision(), Precision::kFloat32);
  }
  EXPECT_THROW(ExactSearch(broken, {.precision = Precision::kInt16}), Error);
}

TEST(ExactSearch, BadArgumentsAreErrors) {
  const ExactSearch search(at::randn({10, 8}));
  EXPECT_THROW(search.search(at::randn({2, 7}), 1), Error);
  EXPECT_THROW(search.search(at::randn({2, 8}), 11), Error);
  EXPECT_THROW(search.search(at::randn({2, 8}), 0), Error);
  EXPECT_THROW(ExactSearch(at::empty({0, 8})), Error);
}

}  // namespace
}  // namespace pv::search
