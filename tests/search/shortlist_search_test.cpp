#include "search/shortlist_search.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <patchvec/error.h>

namespace pv::search {
namespace {

// Post-ReLU-like features of `rank` hidden factors, with a large common offset.
at::Tensor feature_like(std::int64_t rows, std::int64_t dim, std::int64_t rank, std::int64_t seed) {
  at::manual_seed(seed);
  const at::Tensor basis = at::randn({rank, dim});
  return at::relu(at::randn({rows, rank}).mm(basis) * 0.3 + 1.0);
}

ExactSearch exact_whole(const at::Tensor& bank) {
  return ExactSearch(bank, {.precision = Precision::kFloat32, .partition_min_size = 0});
}

// A shortlist of the whole bank is the exact search: the same neighbours, the same distances,
// bit for bit (the same centring and the same distance function).
TEST(ShortlistSearch, AShortlistOfTheWholeBankIsTheExactSearchBitForBit) {
  at::set_num_threads(2);
  const at::Tensor bank = feature_like(700, 96, 16, 1);
  const at::Tensor queries = feature_like(150, 96, 16, 2);
  // Also with the bank taken in chunks of 6 rows (150 queries x 6 x 4 bytes): shortlists built
  // across chunks, and groups cut short at a chunk's end.
  for (const std::int64_t bytes : {std::int64_t{4} << 20, std::int64_t{3600}}) {
    const ShortlistSearch shortlist(bank,
                                    {.components = 8, .candidates = 700, .max_block_bytes = bytes});
    for (const int k : {1, 3}) {
      const Neighbors got = shortlist.search(queries, k);
      const Neighbors want = exact_whole(bank).search(queries, k);
      EXPECT_TRUE(at::equal(got.indices, want.indices)) << "k = " << k << ", " << bytes;
      EXPECT_TRUE(at::equal(got.distances, want.distances)) << "k = " << k << ", " << bytes;
    }
  }
}

// Data within the kept components: the estimate is the distance (up to rounding), so a short
// shortlist already holds the true neighbours.
TEST(ShortlistSearch, FindsTheExactNeighboursWhenTheComponentsHoldTheData) {
  at::set_num_threads(2);
  const at::Tensor bank = feature_like(4000, 128, 12, 3);
  const at::Tensor queries = feature_like(400, 128, 12, 4);
  // ReLU bends the 12 factors out of a 12-dimensional subspace: 48 components hold nearly all.
  const Neighbors want = exact_whole(bank).search(queries, 1);
  // The shortlist is built the same whether the bank comes whole or in chunks of 100 rows.
  const ShortlistSearch chunked(
      bank, {.components = 48, .candidates = 16, .max_block_bytes = 400 * 100 * 4});
  const ShortlistSearch shortlist(bank, {.components = 48, .candidates = 16});
  const Neighbors got = shortlist.search(queries, 1);
  const double same = (got.indices == want.indices).to(at::kFloat).mean().item<double>();
  EXPECT_GT(same, 0.99);
  const Neighbors in_chunks = chunked.search(queries, 1);
  EXPECT_TRUE(at::equal(in_chunks.indices, got.indices));
  EXPECT_TRUE(at::equal(in_chunks.distances, got.distances));
  EXPECT_EQ(shortlist.components(), 48);
  EXPECT_EQ(shortlist.candidates(), 16);
}

// Equal estimates keep the lower index, as the exact search orders equal distances: a bank of
// 30 copies of 10 vectors gives each query the first copy of its nearest one, though a
// shortlist of 3 sees 30 estimates equal to its best (and compacts its gathered candidates
// again and again).
TEST(ShortlistSearch, AmongEqualEstimatesTheLowerIndexIsKept) {
  at::set_num_threads(2);
  const at::Tensor bank = feature_like(10, 32, 4, 9).repeat({30, 1});  // row i: vector i mod 10
  const at::Tensor queries = feature_like(60, 32, 4, 10);
  const ShortlistSearch shortlist(bank, {.components = 8, .candidates = 3});
  const Neighbors got = shortlist.search(queries, 1);
  const Neighbors want = exact_whole(bank).search(queries, 1);
  EXPECT_TRUE(at::equal(got.indices, want.indices));
  EXPECT_TRUE(at::equal(got.distances, want.distances));
  EXPECT_TRUE((got.indices < 10).all().item<bool>());
}

// Whatever the shortlist misses, each answer is a bank vector at its exact distance: never
// nearer than the true neighbour, ascending, and equal to it where the indices agree.
TEST(ShortlistSearch, EveryAnswerIsABankVectorAtItsExactDistance) {
  at::set_num_threads(2);
  at::manual_seed(5);
  const at::Tensor bank = at::randn({3000, 64});  // no low-dimensional structure: many misses
  const at::Tensor queries = at::randn({200, 64});
  const ShortlistSearch shortlist(bank, {.components = 4, .candidates = 8});
  const int k = 3;
  const Neighbors got = shortlist.search(queries, k);
  const Neighbors want = exact_whole(bank).search(queries, k);
  const at::Tensor measured =
      (queries.unsqueeze(1) - bank.index({got.indices})).pow(2).sum(2).sqrt();
  EXPECT_LT(((measured - got.distances).abs() / measured.clamp_min(1e-6)).max().item<float>(),
            1e-4);
  EXPECT_TRUE((got.distances >= want.distances * (1 - 1e-6)).all().item<bool>());
  EXPECT_TRUE(
      (got.distances.narrow(1, 1, k - 1) >= got.distances.narrow(1, 0, k - 1)).all().item<bool>());
  const at::Tensor agree = got.indices.narrow(1, 0, 1) == want.indices.narrow(1, 0, 1);
  EXPECT_TRUE(at::equal(got.distances.narrow(1, 0, 1).masked_select(agree),
                        want.distances.narrow(1, 0, 1).masked_select(agree)));
  // And it does miss here: a test that could not fail would prove nothing about the above.
  EXPECT_LT(agree.to(at::kFloat).mean().item<float>(), 1.0f);
}

// search_exact() is the whole bank's exact answer where search() misses: ExactSearch's, bit for
// bit, searched whole or partitioned, in blocks of queries or all at once.
TEST(ShortlistSearch, ItsExactSearchIsExactSearchBitForBit) {
  at::set_num_threads(2);
  at::manual_seed(8);
  const at::Tensor bank = at::randn({3000, 64});
  const at::Tensor queries = at::randn({120, 64});
  const ExactSearch partitioned(bank, {.precision = Precision::kFloat32, .partition_min_size = 1});
  const ExactSearch whole = exact_whole(bank);
  ASSERT_GT(partitioned.clusters(), 0);
  EXPECT_FALSE(partitioned.approximate());
  // Blocks of all rows, of 7 (products; the last of 1), of 3 (matrix-vector products).
  for (const std::int64_t bytes :
       {std::int64_t{16} << 20, std::int64_t{3000 * 4 * 7}, std::int64_t{3000 * 4 * 3}}) {
    const ShortlistSearch shortlist(bank,
                                    {.components = 4, .candidates = 8, .max_block_bytes = bytes});
    EXPECT_TRUE(shortlist.approximate());
    for (const int k : {1, 9}) {
      const Neighbors got = shortlist.search_exact(queries, k);
      for (const BankSearch* exact : {&partitioned, &whole}) {
        const Neighbors want = exact->search_exact(queries, k);
        EXPECT_TRUE(at::equal(got.indices, want.indices)) << "k = " << k << ", " << bytes;
        EXPECT_TRUE(at::equal(got.distances, want.distances)) << "k = " << k << ", " << bytes;
      }
    }
    // Where the shortlist itself misses (so the above is not the same answer twice).
    EXPECT_FALSE(at::equal(shortlist.search(queries, 1).indices,
                           shortlist.search_exact(queries, 1).indices));
  }
  const ShortlistSearch shortlist(bank, {.components = 4, .candidates = 8});
  EXPECT_EQ(shortlist.search_exact(queries, 3000).indices.size(1), 3000);  // beyond candidates
  EXPECT_THROW(shortlist.search_exact(queries, 3001), Error);
  EXPECT_EQ(shortlist.search_exact(at::empty({0, 64}), 2).indices.size(0), 0);
}

TEST(ShortlistSearch, ABfloat16BankIsSearchedInItsValuesWidened) {
  at::set_num_threads(2);
  const at::Tensor bank = feature_like(500, 64, 8, 6).to(at::kBFloat16);
  const at::Tensor queries = feature_like(50, 64, 8, 7);
  const ShortlistSearch shortlist(bank, {.components = 64, .candidates = 500});
  const Neighbors got = shortlist.search(queries, 2);
  const Neighbors want = exact_whole(bank.to(at::kFloat)).search(queries, 2);
  EXPECT_TRUE(at::equal(got.indices, want.indices));
  EXPECT_TRUE(at::equal(got.distances, want.distances));
}

// As ExactSearch: no queries, no answers (an empty image batch).
TEST(ShortlistSearch, NoQueriesGiveNoAnswers) {
  const at::Tensor bank = at::randn({20, 8});
  const Neighbors none = ShortlistSearch(bank, {.components = 4}).search(at::empty({0, 8}), 2);
  EXPECT_EQ(none.indices.sizes(), (std::vector<std::int64_t>{0, 2}));
  EXPECT_EQ(none.distances.sizes(), (std::vector<std::int64_t>{0, 2}));
  EXPECT_EQ(exact_whole(bank).search(at::empty({0, 8}), 2).indices.size(0), 0);
}

TEST(ShortlistSearch, ImpossibleRequestsAreErrors) {
  const at::Tensor bank = at::randn({20, 8});
  EXPECT_THROW(ShortlistSearch(at::randn({0, 8})), Error);
  EXPECT_THROW(ShortlistSearch(bank, {.components = 0}), Error);
  EXPECT_THROW(ShortlistSearch(bank, {.candidates = 0}), Error);
  const ShortlistSearch shortlist(bank, {.components = 100, .candidates = 50});
  EXPECT_EQ(shortlist.components(), 8);   // at most the dimension
  EXPECT_EQ(shortlist.candidates(), 20);  // at most the bank
  EXPECT_THROW(shortlist.search(at::randn({3, 7}), 1), Error);
  EXPECT_THROW(shortlist.search(at::randn({3, 8}), 21), Error);
  EXPECT_THROW(shortlist.search(at::randn({3, 8}), 0), Error);
  EXPECT_EQ(shortlist.search(at::randn({3, 8}), 20).indices.size(1), 20);
}

}  // namespace
}  // namespace pv::search
