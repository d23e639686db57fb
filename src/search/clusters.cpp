// The partitioned search of a large bank (see exact_search.h): building the clusters, and
// searching them.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "search/exact_search.h"
#include "search/scan.h"

namespace pv::search {

using namespace detail;  // NOLINT(google-build-using-namespace): this module's own internals

namespace {

// What a query's lower bounds on its distances to each cluster's members need.
struct CentreBounds {
  const float* squared_norms;  // of the centres
  const float* norms;
  const float* radii;
  std::int64_t count;
  double dot_error;      // dot_error_coefficient() of the products with the centres
  double norm_roundoff;  // distance_roundoff(): relative error of a computed squared norm
};

// Writes a lower bound on the query's distance to any member of each cluster (its distance to
// the centre, less the rounding of its product, less the radius) and returns the cluster of the
// nearest centre. `dots`: the query's products with the centres.
__attribute__((target_clones("avx512f", "avx2", "default"))) std::int64_t centre_lower_bounds(
    const CentreBounds& b, float query_squared_norm, const float* dots, float* lower) {
  const float q2 = query_squared_norm;
  const auto scale = static_cast<float>(2 * b.dot_error) * std::sqrt(q2);
  // The rounding of the sum itself, and of the two squared norms (sums of D positive terms).
  const auto roundoff = static_cast<float>(8 * kFloatUnitRoundoff + b.norm_roundoff);
  for (std::int64_t c = 0; c < b.count; ++c) {
    const float d2 = q2 + b.squared_norms[c] - 2 * dots[c];
    const float error = scale * b.norms[c] + roundoff * (q2 + b.squared_norms[c]);
    // Lowered by a little more than this float arithmetic can round it up.
    lower[c] = std::sqrt(std::max(d2 - error, 0.0f)) * (1 - 1e-6f) - b.radii[c];
  }
  std::int64_t nearest = 0;
  for (std::int64_t c = 1; c < b.count; ++c) {
    if (dots[c] * -2 + b.squared_norms[c] < dots[nearest] * -2 + b.squared_norms[nearest]) {
      nearest = c;
    }
  }
  return nearest;
}

// Row i of the contiguous matrix becomes its row order[i] (a permutation), in place: each cycle
// of the permutation moves its rows along with one row's worth of memory aside.
void permute_rows(const at::Tensor& matrix, const std::int64_t* order) {
  const std::int64_t rows = matrix.size(0);
  const auto bytes = static_cast<std::size_t>(matrix.size(1) * matrix.element_size());
  auto* base = static_cast<std::byte*>(matrix.data_ptr());
  const auto row = [&](std::int64_t i) { return base + static_cast<std::size_t>(i) * bytes; };
  std::vector<std::byte> aside(bytes);
  std::vector<bool> placed(static_cast<std::size_t>(rows), false);
  for (std::int64_t start = 0; start < rows; ++start) {
    if (placed[start] || order[start] == start) continue;
    std::memcpy(aside.data(), row(start), bytes);
    std::int64_t at = start;
    while (order[at] != start) {
      std::memcpy(row(at), row(order[at]), bytes);
      placed[at] = true;
      at = order[at];
    }
    std::memcpy(row(at), aside.data(), bytes);
    placed[at] = true;
  }
}

// A thread's buffers for searching one cluster after another.
struct ClusterScratch {
  explicit ClusterScratch(at::ScalarType type)
      : picked(at::empty({0}, type)), dots(at::empty({0}, type)) {}
  at::Tensor picked;  // the cluster's queries, in the first pass's precision
  at::Tensor dots;    // their products with the cluster's rows
  std::vector<float> values;
};

}  // namespace

void ExactSearch::partition(const at::Tensor& centred) {
  const std::int64_t m = centred.size(0);
  const std::int64_t count = m / std::max<std::int64_t>(options_.cluster_size, 1);
  // Centres first: evenly spaced rows, each vector assigned to its nearest (any assignment gives
  // exact answers; a good one prunes more).
  at::Tensor seed_rows = at::empty({count}, at::kLong);
  for (std::int64_t c = 0; c < count; ++c) seed_rows.data_ptr<std::int64_t>()[c] = c * m / count;
  const at::Tensor seeds = centred.index_select(0, seed_rows);
  const SearchOptions whole{.max_block_bytes = options_.max_block_bytes, .partition_min_size = 0};
  // Each vector's nearest among `centres`, a slice of rows at a time (a search copies its queries).
  const auto nearest = [&](const at::Tensor& centres) {
    const ExactSearch search(centres, whole);
    at::Tensor out = at::empty({m}, at::kLong);
    constexpr std::int64_t kSlice = 16384;
    for (std::int64_t first = 0; first < m; first += kSlice) {
      const std::int64_t rows = std::min(kSlice, m - first);
      out.narrow(0, first, rows)
          .copy_(search.search(centred.narrow(0, first, rows), 1).indices.squeeze(1));
    }
    return out;
  };
  at::Tensor label = nearest(seeds);
  // One step of Lloyd's: each vector to its nearest cluster mean (15 % less to search).
  {
    const at::Tensor counts =
        at::zeros({count}, at::kFloat).index_add_(0, label, at::ones({m}, at::kFloat));
    const at::Tensor kept = counts.nonzero().squeeze(1);
    const at::Tensor means =
        (at::zeros({count, centred.size(1)}, at::kFloat).index_add_(0, label, centred) /
         counts.clamp_min(1).unsqueeze(1))
            .index_select(0, kept);
    label = nearest(means);
  }
  const std::int64_t* labels = label.data_ptr<std::int64_t>();
  std::vector<std::int64_t> sizes(count, 0);
  for (std::int64_t i = 0; i < m; ++i) ++sizes[labels[i]];
  // Clusters that kept members, in order; stored rows cluster by cluster, by index within one.
  std::vector<std::int64_t> cluster_of(count, -1);
  offsets_.assign(1, 0);
  for (std::int64_t c = 0; c < count; ++c) {
    if (sizes[c] == 0) continue;
    cluster_of[c] = static_cast<std::int64_t>(offsets_.size()) - 1;
    offsets_.push_back(offsets_.back() + sizes[c]);
  }
  const std::int64_t clusters = static_cast<std::int64_t>(offsets_.size()) - 1;
  std::vector<std::int64_t> next(offsets_.begin(), offsets_.end() - 1);
  order_ = at::empty({m}, at::kLong);
  std::int64_t* order = order_.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < m; ++i) order[next[cluster_of[labels[i]]]++] = i;

  permute_rows(centred, order);  // in place: no second copy of the bank
  if (raw_.defined()) {
    raw_ = raw_.clone();  // it may be the caller's
    permute_rows(raw_, order);
  }

  centres_ = at::empty({clusters, centred.size(1)}, at::kFloat);
  radii_ = at::empty({clusters}, at::kFloat);
  const double roundoff = distance_roundoff(centred.size(1));
  at::parallel_for(0, clusters, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t c = begin; c < end; ++c) {
      const at::Tensor members = centred.narrow(0, offsets_[c], offsets_[c + 1] - offsets_[c]);
      centres_[c].copy_(members.mean(0));
      const float* centre = centres_.data_ptr<float>() + c * centred.size(1);
      double farthest = 0;
      for (std::int64_t j = 0; j < members.size(0); ++j) {
        const float d = squared_distance(centre, members.data_ptr<float>() + j * members.size(1),
                                         members.size(1));
        farthest = std::isnan(d) ? std::numeric_limits<double>::infinity()
                                 : std::max(farthest, static_cast<double>(d));
      }
      // Widened by more than float32's rounding of a D-term sum of squares can move it.
      radii_.data_ptr<float>()[c] =
          static_cast<float>(std::sqrt(farthest * (1 + 4 * roundoff)) + 1e-6);
    }
  });
  centre_squared_norms_ = centres_.pow(2).sum(1).contiguous();
  centre_norms_ = centre_squared_norms_.sqrt().contiguous();
}

namespace {

// Queries of a block whose bounds decide between the partitioned and the whole search.
constexpr std::int64_t kBoundSample = 64;

}  // namespace

void ExactSearch::search_partitioned(const Rows& rows, int k, Neighbors& out) const {
  const std::int64_t count = rows.centred.size(0);
  const std::int64_t clusters = this->clusters();
  const std::int64_t block = std::clamp<std::int64_t>(
      options_.max_block_bytes / std::max<std::int64_t>(clusters * 8, 1), 1, count);
  const double dot_error = dot_error_coefficient(filter_precision(), dim());
  const double centre_error = dot_error_coefficient(Precision::kFloat32, dim());
  const float* radii = radii_.data_ptr<float>();
  const float* centre_squared_norms = centre_squared_norms_.data_ptr<float>();
  const std::int64_t* order = order_.data_ptr<std::int64_t>();
  const double roundoff = distance_roundoff(dim());
  for (std::int64_t start = 0; start < count; start += block) {
    const std::int64_t n = std::min(block, count - start);
    const at::Tensor query_block = rows.centred.narrow(0, start, n);
    const at::Tensor filter_block =
        filter_precision() == Precision::kBFloat16 ? query_block.to(at::kBFloat16) : query_block;
    // Each query's lower bound on its distance to every cluster's members, and its home: the
    // cluster of its nearest centre.
    const at::Tensor to_centres = at::mm(query_block, centres_.t()).contiguous();
    std::vector<float> lower(static_cast<std::size_t>(n * clusters));
    std::vector<std::int64_t> home(n, 0);
    const CentreBounds bounds{centre_squared_norms,
                              centre_norms_.data_ptr<float>(),
                              radii,
                              clusters,
                              centre_error,
                              roundoff};
    at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t r = begin; r < end; ++r) {
        home[r] = centre_lower_bounds(bounds, rows.squared_norms.data_ptr<float>()[start + r],
                                      to_centres.data_ptr<float>() + r * clusters,
                                      lower.data() + r * clusters);
      }
    });
    std::vector<TopK> found(n, TopK(k));
    // One cluster's rows against the given queries of the block.
    const auto search_cluster = [&](std::int64_t c, const std::vector<std::int64_t>& queries,
                                    ClusterScratch& scratch, std::mutex* locks) {
      const std::int64_t first = offsets_[c];
      const std::int64_t members = offsets_[c + 1] - first;
      // Into buffers kept by the thread: fresh ones would cost a page fault per page each time.
      scratch.picked.resize_({0});  // keeps the memory; resizes without libtorch's warning
      scratch.dots.resize_({0});
      at::index_select_out(scratch.picked, filter_block, 0,
                           at::from_blob(const_cast<std::int64_t*>(queries.data()),
                                         {static_cast<std::int64_t>(queries.size())}, at::kLong));
      at::mm_out(scratch.dots, scratch.picked, filter_.narrow(0, first, members).t());
      const at::Tensor& dots = scratch.dots;
      for (std::size_t i = 0; i < queries.size(); ++i) {
        const std::int64_t r = queries[i];
        const RowContext context = rows.context(*this, start + r, first, members, dot_error);
        std::unique_lock<std::mutex> lock;
        if (locks != nullptr) lock = std::unique_lock(locks[r]);
        if (filter_precision() == Precision::kBFloat16) {
          scan(context, dots.data_ptr<c10::BFloat16>() + static_cast<std::int64_t>(i) * members,
               order + first, scratch.values, found[r]);
        } else {
          scan(context, dots.data_ptr<float>() + static_cast<std::int64_t>(i) * members,
               order + first, scratch.values, found[r]);
        }
      }
    };
    // 1. Each query in its home cluster: a bound on its k-th distance, and with it the clusters
    // phase 2 must search.
    const auto search_homes = [&](const std::vector<std::int64_t>& rows_of_block) {
      std::vector<std::vector<std::int64_t>> by_home(clusters);
      for (const std::int64_t r : rows_of_block) by_home[home[r]].push_back(r);
      at::parallel_for(0, clusters, 1, [&](std::int64_t begin, std::int64_t end) {
        ClusterScratch scratch(filter_.scalar_type());
        for (std::int64_t c = begin; c < end; ++c) {
          if (!by_home[c].empty()) search_cluster(c, by_home[c], scratch, nullptr);
        }
      });
    };
    // A NaN bound is no reason to skip a cluster.
    const auto must_search = [&](std::int64_t r, std::int64_t c) {
      const double limit =
          std::sqrt(static_cast<double>(found[r].worst())) * (1 + 4 * roundoff) + 1e-6;
      return c != home[r] && !(lower[r * clusters + c] > limit);
    };
    // Cluster by cluster, a row costs several times what it does in the whole bank's one
    // product (and phase 1 is not free either): a sample of the block says how much of the bank
    // the bounds leave, and past `whole_search_above` the block is searched whole (the same
    // answers).
    std::vector<std::int64_t> sample, rest;
    const std::int64_t step = std::max<std::int64_t>(n / kBoundSample, 1);
    for (std::int64_t r = 0; r < n; ++r) (r % step == 0 ? sample : rest).push_back(r);
    search_homes(sample);
    double sample_rows = 0;
    for (const std::int64_t r : sample) {
      for (std::int64_t c = 0; c < clusters; ++c) {
        if (must_search(r, c)) sample_rows += static_cast<double>(offsets_[c + 1] - offsets_[c]);
      }
    }
    if (sample_rows > options_.whole_search_above * static_cast<double>(sample.size()) *
                          static_cast<double>(size())) {
      search_whole(rows, k, out, start, n);
      continue;
    }
    search_homes(rest);
    // 2. Every other cluster that could hold a nearer vector.
    std::vector<std::vector<std::int64_t>> queries(clusters);
    for (std::int64_t r = 0; r < n; ++r) {
      for (std::int64_t c = 0; c < clusters; ++c) {
        if (must_search(r, c)) queries[c].push_back(r);
      }
    }
    std::vector<std::mutex> locks(n);
    at::parallel_for(0, clusters, 1, [&](std::int64_t begin, std::int64_t end) {
      ClusterScratch scratch(filter_.scalar_type());
      for (std::int64_t c = begin; c < end; ++c) {
        if (!queries[c].empty()) search_cluster(c, queries[c], scratch, locks.data());
      }
    });
    for (std::int64_t r = 0; r < n; ++r) {
      write_answer(found[r], out.distances.data_ptr<float>() + (start + r) * k,
                   out.indices.data_ptr<std::int64_t>() + (start + r) * k);
    }
  }
}

}  // namespace pv::search
