#include "search/exact_search.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <patchvec/error.h>
#include <patchvec/system.h>

namespace pv::search {
namespace {

constexpr double kFloatUnitRoundoff = 1.0 / (1 << 24);    // 2^-24
constexpr double kBFloat16UnitRoundoff = 1.0 / (1 << 8);  // 2^-8
// A bound on the relative error of a float32 squared distance summed over `dim` terms.
double distance_roundoff(std::int64_t dim) {
  return 1.1 * static_cast<double>(dim + 2) * kFloatUnitRoundoff;
}

// |computed x.y - exact x.y| <= coefficient * ||x|| ||y|| for the first pass's product.
double dot_error_coefficient(Precision precision, std::int64_t dim) {
  const double accumulation = 1.1 * static_cast<double>(dim) * kFloatUnitRoundoff;  // fp32 sums
  if (precision == Precision::kFloat32) return accumulation + kFloatUnitRoundoff;
  // Inputs rounded to bf16 (2u + u^2), the result rounded to bf16 (u), fp32 accumulation.
  const double u = kBFloat16UnitRoundoff;
  return 3 * u + 4 * u * u + accumulation * (1 + 3 * u);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) float squared_distance(
    const float* a, const float* b, std::int64_t dim) {
  constexpr int kLanes = 16;  // independent sums so the compiler can vectorise
  float lanes[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= dim; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float d = a[i + l] - b[i + l];
      lanes[l] += d * d;
    }
  }
  float sum = 0;
  for (; i < dim; ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  for (const float lane : lanes) sum += lane;
  return sum;
}

// The same between a float32 vector and a bfloat16 one (a bank kept in bfloat16), exactly as
// if the latter were widened to float32 first.
__attribute__((target_clones("avx512f", "avx2", "default"))) float squared_distance(
    const float* a, const c10::BFloat16* b, std::int64_t dim) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= dim; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float d = a[i + l] - static_cast<float>(b[i + l]);
      lanes[l] += d * d;
    }
  }
  float sum = 0;
  for (; i < dim; ++i) {
    const float d = a[i] - static_cast<float>(b[i]);
    sum += d * d;
  }
  for (const float lane : lanes) sum += lane;
  return sum;
}

float to_float(float value) {
  return value;
}
float to_float(c10::BFloat16 value) {
  return static_cast<float>(value);
}

// The k best (smallest) values seen so far, kept sorted; k is small (1 to a few dozen). Among
// equal values the lower index comes first, so the answer does not depend on the order of offers.
class TopK {
 public:
  explicit TopK(int k) : k_(k) {}
  int k() const { return k_; }
  float worst() const {
    return static_cast<int>(values_.size()) < k_ ? std::numeric_limits<float>::infinity()
                                                 : values_.back();
  }
  // Until k values are kept every value is taken, infinite ones too (a vector whose distance
  // overflows is still a neighbour when fewer than k are nearer).
  void offer(float value, std::int64_t index) {
    const bool full = static_cast<int>(values_.size()) == k_;
    if (full && !before(value, index, values_.size() - 1)) return;
    if (full) {
      values_.pop_back();
      indices_.pop_back();
    }
    std::size_t at = values_.size();
    while (at > 0 && before(value, index, at - 1)) --at;
    values_.insert(values_.begin() + static_cast<std::ptrdiff_t>(at), value);
    indices_.insert(indices_.begin() + static_cast<std::ptrdiff_t>(at), index);
  }
  bool contains(std::int64_t index) const {
    return std::find(indices_.begin(), indices_.end(), index) != indices_.end();
  }
  const std::vector<float>& values() const { return values_; }
  const std::vector<std::int64_t>& indices() const { return indices_; }

 private:
  bool before(float value, std::int64_t index, std::size_t kept) const {
    return value < values_[kept] || (value == values_[kept] && index < indices_[kept]);
  }
  int k_;
  std::vector<float> values_;
  std::vector<std::int64_t> indices_;
};

struct RowContext {
  const float* query;  // centred, D
  float query_squared_norm;
  float query_norm;
  const float* bank;              // centred, M x D; null for a bank kept in bfloat16...
  const float* raw_query;         // ...which is measured against the query as given, D
  const c10::BFloat16* raw_bank;  // ...in its own values, M x D
  const float* bank_squared_norms;
  const float* bank_norms;
  std::int64_t size;
  std::int64_t dim;
  double dot_error;  // see dot_error_coefficient()

  // The exact squared distance to bank vector j (distances do not depend on the centring).
  float distance(std::int64_t j) const {
    return bank != nullptr ? squared_distance(query, bank + j * dim, dim)
                           : squared_distance(raw_query, raw_bank + j * dim, dim);
  }
};

// First-pass squared distances and, for each, a lower bound on the true squared distance. The
// body is shared; the two entry points below are compiled for each instruction set (clang
// cannot clone templates).
template <typename T>
inline __attribute__((always_inline)) void first_pass_body(const RowContext& c, const T* dots,
                                                           float* approx, float* lower) {
  const auto scale = static_cast<float>(2 * c.dot_error * c.query_norm);
  const auto roundoff = static_cast<float>(8 * kFloatUnitRoundoff);
  for (std::int64_t j = 0; j < c.size; ++j) {
    const float a = c.query_squared_norm + c.bank_squared_norms[j] - 2 * to_float(dots[j]);
    approx[j] = a;
    lower[j] =
        a - scale * c.bank_norms[j] - roundoff * (c.query_squared_norm + c.bank_squared_norms[j]);
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void first_pass(const RowContext& c,
                                                                             const float* dots,
                                                                             float* approx,
                                                                             float* lower) {
  first_pass_body(c, dots, approx, lower);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void first_pass(
    const RowContext& c, const at::BFloat16* dots, float* approx, float* lower) {
  first_pass_body(c, dots, approx, lower);
}

// Offers the bank rows of `c` to `exact`, given their first-pass products `dots`; `ids` names
// each row in the answer (null: its position). The rows' best by the first pass are measured
// first (a bound on the answer), then every row whose first-pass distance could be wrong by
// enough to beat the k-th kept.
template <typename T>
void scan(const RowContext& c, const T* dots, const std::int64_t* ids, std::vector<float>& scratch,
          TopK& exact) {
  scratch.resize(2 * static_cast<std::size_t>(c.size));
  float* approx = scratch.data();
  float* lower = approx + c.size;
  first_pass(c, dots, approx, lower);
  const auto id = [&](std::int64_t j) { return ids != nullptr ? ids[j] : j; };
  TopK first(exact.k());
  if (exact.k() == 1) {
    const auto best = std::min_element(approx, approx + c.size) - approx;
    first.offer(approx[best], best);
  } else {
    for (std::int64_t j = 0; j < c.size; ++j) first.offer(approx[j], j);
  }
  for (const auto j : first.indices()) exact.offer(c.distance(j), id(j));
  for (std::int64_t j = 0; j < c.size; ++j) {
    const float limit = exact.worst();
    if (lower[j] > limit + limit * 1e-6f) continue;
    if (first.contains(j)) continue;
    exact.offer(c.distance(j), id(j));
  }
}

// What a query's lower bounds on its distances to each cluster's members need.
struct CentreBounds {
  const float* squared_norms;  // of the centres
  const float* norms;
  const float* radii;
  std::int64_t count;
  double dot_error;  // dot_error_coefficient() of the products with the centres
};

// Writes a lower bound on the query's distance to any member of each cluster (its distance to
// the centre, less the rounding of its product, less the radius) and returns the cluster of the
// nearest centre. `dots`: the query's products with the centres.
__attribute__((target_clones("avx512f", "avx2", "default"))) std::int64_t centre_lower_bounds(
    const CentreBounds& b, float query_squared_norm, const float* dots, float* lower) {
  const float q2 = query_squared_norm;
  const auto scale = static_cast<float>(2 * b.dot_error) * std::sqrt(q2);
  const auto roundoff = static_cast<float>(8 * kFloatUnitRoundoff);
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

void write_answer(const TopK& exact, float* out_distances, std::int64_t* out_indices) {
  for (int i = 0; i < exact.k(); ++i) {
    out_distances[i] = std::sqrt(std::max(exact.values()[i], 0.0f));
    out_indices[i] = exact.indices()[i];
  }
}

}  // namespace

// The queries of one search() call.
struct ExactSearch::Rows {
  at::Tensor raw;            // Q x D float32, as given
  at::Tensor centred;        // Q x D float32, at the bank's mean
  at::Tensor squared_norms;  // Q, of the centred rows

  // Query q against `size` stored bank rows from `first` on.
  RowContext context(const ExactSearch& s, std::int64_t q, std::int64_t first, std::int64_t size,
                     double dot_error) const {
    const std::int64_t dim = s.dim();
    return {centred.data_ptr<float>() + q * dim,
            squared_norms.data_ptr<float>()[q],
            std::sqrt(squared_norms.data_ptr<float>()[q]),
            s.centred_.defined() ? s.centred_.data_ptr<float>() + first * dim : nullptr,
            raw.data_ptr<float>() + q * dim,
            s.raw_.defined() ? s.raw_.data_ptr<c10::BFloat16>() + first * dim : nullptr,
            s.squared_norms_.data_ptr<float>() + first,
            s.norms_.data_ptr<float>() + first,
            size,
            dim,
            dot_error};
  }
};

ExactSearch::ExactSearch(const at::Tensor& vectors, const SearchOptions& options)
    : options_(options) {
  if (vectors.dim() != 2 || vectors.size(0) == 0) {
    throw Error("nearest-neighbour search needs a non-empty M x D matrix");
  }
  const bool half = vectors.scalar_type() == at::kBFloat16;
  const at::Tensor bank = vectors.to(at::kFloat).contiguous();
  mean_ = bank.mean(0);
  at::Tensor centred = (bank - mean_).contiguous();
  const bool partitioned = options_.partition_min_size > 0 &&
                           bank.size(0) >= options_.partition_min_size &&
                           bank.size(0) >= 2 * std::max<std::int64_t>(options_.cluster_size, 1);
  precision_ = options.precision;
  if (precision_ == Precision::kAuto) {
    // A cluster's products are small: bfloat16's looser bounds would cost more than it saves.
    precision_ = !partitioned && cpu_has_native_bf16() ? Precision::kBFloat16 : Precision::kFloat32;
  }
  // A bfloat16 bank behind a bfloat16 filter is measured in its own values (no float32 copy);
  // behind a float32 filter, in that filter's (its values widened, centred: the same memory).
  if (half && precision_ == Precision::kBFloat16) raw_ = vectors.contiguous();
  if (partitioned) partition(centred);  // reorders `centred` and `raw_` cluster by cluster
  squared_norms_ = centred.pow(2).sum(1).contiguous();
  norms_ = squared_norms_.sqrt().contiguous();
  filter_ = precision_ == Precision::kBFloat16 ? centred.to(at::kBFloat16).contiguous() : centred;
  if (!raw_.defined()) centred_ = std::move(centred);
}

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

Neighbors ExactSearch::search(const at::Tensor& queries, int k) const {
  if (queries.dim() != 2 || queries.size(1) != dim()) {
    throw Error("nearest-neighbour search: queries must be N x " + std::to_string(dim()));
  }
  if (k < 1 || k > size()) {
    throw Error("nearest-neighbour search: k = " + std::to_string(k) + " but the bank holds " +
                std::to_string(size()) + " vectors");
  }
  Rows rows;
  rows.raw = queries.to(at::kFloat).contiguous();
  rows.centred = (rows.raw - mean_).contiguous();
  rows.squared_norms = rows.centred.pow(2).sum(1).contiguous();
  const std::int64_t count = rows.centred.size(0);
  Neighbors result{at::empty({count, k}, at::kFloat), at::empty({count, k}, at::kLong)};
  if (clusters() > 0) {
    search_partitioned(rows, k, result);
  } else {
    search_whole(rows, k, result);
  }
  return result;
}

void ExactSearch::search_whole(const Rows& rows, int k, Neighbors& out) const {
  const std::int64_t count = rows.centred.size(0);
  const std::int64_t element_bytes = filter_.element_size();
  const std::int64_t block = std::clamp<std::int64_t>(
      options_.max_block_bytes / std::max<std::int64_t>(size() * element_bytes, 1), 1, count);
  const double dot_error = dot_error_coefficient(precision_, dim());
  for (std::int64_t start = 0; start < count; start += block) {
    const std::int64_t n = std::min(block, count - start);
    const at::Tensor query_block = rows.centred.narrow(0, start, n);
    const at::Tensor dots =
        at::mm(precision_ == Precision::kBFloat16 ? query_block.to(at::kBFloat16) : query_block,
               filter_.t())
            .contiguous();
    at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<float> scratch;
      for (std::int64_t r = begin; r < end; ++r) {
        const std::int64_t q = start + r;
        const RowContext context = rows.context(*this, q, 0, size(), dot_error);
        TopK exact(k);
        if (precision_ == Precision::kBFloat16) {
          scan(context, dots.data_ptr<c10::BFloat16>() + r * size(), nullptr, scratch, exact);
        } else {
          scan(context, dots.data_ptr<float>() + r * size(), nullptr, scratch, exact);
        }
        write_answer(exact, out.distances.data_ptr<float>() + q * k,
                     out.indices.data_ptr<std::int64_t>() + q * k);
      }
    });
  }
}

void ExactSearch::search_partitioned(const Rows& rows, int k, Neighbors& out) const {
  const std::int64_t count = rows.centred.size(0);
  const std::int64_t clusters = this->clusters();
  const std::int64_t block = std::clamp<std::int64_t>(
      options_.max_block_bytes / std::max<std::int64_t>(clusters * 8, 1), 1, count);
  const double dot_error = dot_error_coefficient(precision_, dim());
  const double centre_error = dot_error_coefficient(Precision::kFloat32, dim());
  const float* radii = radii_.data_ptr<float>();
  const float* centre_squared_norms = centre_squared_norms_.data_ptr<float>();
  const std::int64_t* order = order_.data_ptr<std::int64_t>();
  const double roundoff = distance_roundoff(dim());
  for (std::int64_t start = 0; start < count; start += block) {
    const std::int64_t n = std::min(block, count - start);
    const at::Tensor query_block = rows.centred.narrow(0, start, n);
    const at::Tensor filter_block =
        precision_ == Precision::kBFloat16 ? query_block.to(at::kBFloat16) : query_block;
    // Each query's lower bound on its distance to every cluster's members, and its home: the
    // cluster of its nearest centre.
    const at::Tensor to_centres = at::mm(query_block, centres_.t()).contiguous();
    std::vector<float> lower(static_cast<std::size_t>(n * clusters));
    std::vector<std::int64_t> home(n, 0);
    const CentreBounds bounds{centre_squared_norms, centre_norms_.data_ptr<float>(), radii,
                              clusters, centre_error};
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
        if (precision_ == Precision::kBFloat16) {
          scan(context, dots.data_ptr<c10::BFloat16>() + static_cast<std::int64_t>(i) * members,
               order + first, scratch.values, found[r]);
        } else {
          scan(context, dots.data_ptr<float>() + static_cast<std::int64_t>(i) * members,
               order + first, scratch.values, found[r]);
        }
      }
    };
    // 1. Each query in its home cluster: a bound on its k-th distance.
    std::vector<std::vector<std::int64_t>> queries(clusters);
    for (std::int64_t r = 0; r < n; ++r) queries[home[r]].push_back(r);
    at::parallel_for(0, clusters, 1, [&](std::int64_t begin, std::int64_t end) {
      ClusterScratch scratch(filter_.scalar_type());
      for (std::int64_t c = begin; c < end; ++c) {
        if (!queries[c].empty()) search_cluster(c, queries[c], scratch, nullptr);
      }
    });
    // 2. Every other cluster that could hold a nearer vector (a NaN bound is no reason to skip).
    for (auto& list : queries) list.clear();
    for (std::int64_t r = 0; r < n; ++r) {
      const double limit =
          std::sqrt(static_cast<double>(found[r].worst())) * (1 + 4 * roundoff) + 1e-6;
      for (std::int64_t c = 0; c < clusters; ++c) {
        if (c != home[r] && !(lower[r * clusters + c] > limit)) queries[c].push_back(r);
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
