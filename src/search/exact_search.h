// Exact Euclidean k-nearest-neighbour search over a fixed set of vectors (a memory bank).
//
// Distances come from matrix products, ||x||^2 - 2 x.y + ||y||^2, on vectors centred at the
// bank's mean (distances do not change, rounding errors shrink). On CPUs that multiply bfloat16
// natively the product runs in bfloat16 (AMX: ~3-10x faster than float32) and serves only as a
// filter: a rigorous bound on its rounding error says which bank vectors could still be among the
// k nearest, and only those are measured again in float32. Results are therefore exact (to
// float32 rounding) whichever precision the first pass used. On CPUs without them (AVX2 only) the
// whole bank's product runs on 16-bit integers instead: the bank and each block of queries on a
// fixed-point grid (util/int16_products.h; products exact in int32, twice float32's multiply-adds
// per instruction), whose rounding is bounded per vector the same way. The grid is kept besides
// the float32 bank (half its bytes again); measured on an AMD EPYC (Zen 3), 2 cores: 1.7x faster
// on a 78,400-patch bank, 1.1-1.3x on a 7,840-patch one.
//
// A bank of thousands of vectors is partitioned into clusters of about `cluster_size` vectors,
// each with a centre and a radius (its farthest member's distance, rounded up). A query is first
// searched in the cluster of its nearest centre, which bounds its k-th distance from above; by the
// triangle inequality no member of a cluster is nearer than (distance to the centre - radius), so
// only the clusters whose bound is below it are searched too: on a 1,000-image category's bank
// (78,400 wide_resnet50_2 patches) about 3 % of it, 4-5x faster than the whole bank in bfloat16.
// The answer is the whole bank's, bit for bit: the same exact distances, and among equal ones the
// lower index first. A partitioned bank's products run in float32 (a cluster's products are
// small; bfloat16's looser bounds would cost more than they save).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "search/bank_search.h"
#include "util/int16_products.h"

namespace pv::search {

enum class Precision {
  kAuto,      // bfloat16 for a bank searched whole where the CPU has it natively; else int16
              // with AVX2; else float32
  kFloat32,   // float32 products
  kBFloat16,  // bfloat16 products (emulated, slowly, on CPUs without native support)
  kInt16,     // the whole bank's products on an int16 grid (a partitioned bank's clusters:
              // float32); needs finite bank values
};

// Where partitioning pays, by default. With native bfloat16 products (AMX, AVX512-BF16) the
// whole bank's one product is fast: a 7,840-patch bank took 23-32 ms an image searched whole and
// 22-103 partitioned (how well the bounds prune depends on the embeddings), a 78,400-patch one
// 280-320 whole and 70-77 partitioned. In float32 alone (AVX2) the whole product is 4-5x
// slower and clusters pay from a few thousand vectors (7,840: 140 -> 27 ms).
inline constexpr std::int64_t kPartitionMinSizeBf16 = 32768;
inline constexpr std::int64_t kPartitionMinSizeFp32 = 4096;

struct SearchOptions {
  Precision precision = Precision::kAuto;
  // Upper bound on the distance block held at once (queries x bank products).
  std::int64_t max_block_bytes = std::int64_t{256} << 20;
  // Banks of at least this many vectors are partitioned (0: never; -1: kAutoPartition's size
  // for this CPU). Partitioning costs two searches of the bank against size/cluster_size of its
  // vectors when the search is built (78,400 x 1536: about 2 s on 2 cores).
  std::int64_t partition_min_size = -1;
  std::int64_t cluster_size = 64;
  // A partitioned search scans, cluster by cluster, the clusters the bounds cannot rule out:
  // several times slower a row than the whole bank's one matrix product (about 4-6x measured).
  // When the bounds leave more than this fraction of the bank per query (fine-grained
  // embeddings, whose nearest neighbours lie about as far as the clusters are wide: 59-65 %
  // measured on two 100-image banks), a block of queries is searched whole instead: the same
  // answers, bit for bit. 1 or more: never.
  double whole_search_above = 0.25;
};

// Immutable after construction: search() may run on many threads at once.
class ExactSearch final : public BankSearch {
 public:
  // `vectors`: M x D float32, or bfloat16 for a bank kept in half the memory: then distances are
  // exact to those bfloat16 values widened (copied; with a bfloat16 first pass no float32 copy
  // is kept, with a float32 one that copy is the only one).
  explicit ExactSearch(const at::Tensor& vectors, const SearchOptions& options = {});

  // `queries`: Q x D float32; 1 <= k <= size().
  Neighbors search(const at::Tensor& queries, int k) const override;
  Neighbors search_exact(const at::Tensor& queries, int k) const override {
    return search(queries, k);
  }
  bool approximate() const override { return false; }

  std::int64_t size() const override { return filter_.size(0); }
  std::int64_t dim() const override { return filter_.size(1); }
  Precision precision() const { return precision_; }  // never kAuto
  // Number of clusters; 0 when the bank is searched whole.
  std::int64_t clusters() const {
    return offsets_.empty() ? 0 : static_cast<std::int64_t>(offsets_.size()) - 1;
  }

 private:
  struct Rows;
  void partition(const at::Tensor& centred);
  // Rows [first, first + count) of `rows` (count -1: to the end) against the whole bank.
  void search_whole(const Rows& rows, int k, Neighbors& out, std::int64_t first = 0,
                    std::int64_t count = -1) const;
  void search_partitioned(const Rows& rows, int k, Neighbors& out) const;
  // The precision of filter_'s products (a partitioned bank's clusters).
  Precision filter_precision() const {
    return precision_ == Precision::kBFloat16 ? Precision::kBFloat16 : Precision::kFloat32;
  }

  SearchOptions options_;
  Precision precision_;
  at::Tensor mean_;     // D
  at::Tensor centred_;  // M x D float32; undefined for a bfloat16 bank...
  at::Tensor raw_;      // ...kept as given instead, M x D bfloat16
  at::Tensor filter_;   // M x D centred, in filter_precision()
  // With kInt16: the stored rows (centred) on their grid, and its step.
  Int16Panels grid_;
  double grid_step_ = 0;
  at::Tensor squared_norms_;  // M
  at::Tensor norms_;          // M
  // The partition: the rows above are stored cluster by cluster; `order_` gives each stored
  // row's index in the bank as given; cluster c holds stored rows offsets_[c] to offsets_[c+1].
  at::Tensor order_;                   // M int64; undefined when searched whole
  std::vector<std::int64_t> offsets_;  // clusters + 1
  at::Tensor centres_;                 // clusters x D float32, centred
  at::Tensor centre_squared_norms_;    // clusters
  at::Tensor centre_norms_;            // clusters
  at::Tensor radii_;                   // clusters: no member is farther from its centre
};

}  // namespace pv::search
