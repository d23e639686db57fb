#include "search/shortlist_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <patchvec/error.h>
#include <patchvec/system.h>

#include "search/scan.h"
#include "util/int16_products.h"

namespace pv::search {

using namespace detail;  // NOLINT(google-build-using-namespace): this module's own internals

namespace {

// Query rows an estimate block holds at once (their estimates against a chunk of the bank stay
// in cache while the shortlists take them in).
constexpr std::int64_t kQueryRows = 16;
constexpr std::int64_t kBankRows = 8192;  // a chunk: 16 x 8,192 estimates are 512 KiB
// search_exact(): blocks of up to this many rows are matrix-vector products.
constexpr std::int64_t kFewRows = 4;

// [x P, |x - x P P^T|]: the projection onto the basis and the length of what it leaves out.
at::Tensor reduce(const at::Tensor& centred, const at::Tensor& basis) {
  const at::Tensor projected = at::mm(centred, basis);
  const at::Tensor residual =
      (centred.pow(2).sum(1) - projected.pow(2).sum(1)).clamp_min(0).sqrt().unsqueeze(1);
  return at::cat({projected, residual}, 1).contiguous();
}

// `values` (N x D float32) on the int16 grid of their own step (util/int16_products.h), `width`
// >= D columns (zero-padded): N x width int16, and the step.
std::pair<at::Tensor, double> on_grid(const at::Tensor& values, std::int64_t width) {
  const at::Tensor rows = values.contiguous();
  const Int16GridBounds bounds =
      int16_grid_bounds(rows.data_ptr<float>(), rows.size(0), rows.size(1));
  if (!bounds.finite) throw Error("shortlist search: the vectors hold NaN or infinite values");
  const double step = int16_grid_step(bounds.largest, bounds.longest, width);
  at::Tensor grid = at::empty({rows.size(0), width}, at::kShort);
  to_int16_grid(rows.data_ptr<float>(), rows.size(0), rows.size(1), step,
                grid.data_ptr<std::int16_t>(), width);
  return {grid, step};
}

// The estimates norms[i] - scale dots[i], i < n, into `values`; returns the smallest (NaN ones
// left out; +inf if all are). A product then a difference, each rounded (no fused
// multiply-add): every path computes the same numbers.
float estimate_scalar(const float* norms, const std::int32_t* dots, float scale, std::int64_t n,
                      float* values) {
  float smallest = std::numeric_limits<float>::infinity();
  for (std::int64_t i = 0; i < n; ++i) {
    const float product = scale * static_cast<float>(dots[i]);
    values[i] = norms[i] - product;
    smallest = values[i] < smallest ? values[i] : smallest;  // NaN never smaller
  }
  return smallest;
}

// estimate_scalar() for n a multiple of 8.
__attribute__((target("avx2"))) float estimate_avx2(const float* norms, const std::int32_t* dots,
                                                    float scale, std::int64_t n, float* values) {
  const __m256 factor = _mm256_set1_ps(scale);
  __m256 smallest = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  for (std::int64_t i = 0; i < n; i += 8) {
    // Rounded as static_cast<float> rounds (to nearest).
    const __m256 dot =
        _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dots + i)));
    const __m256 value = _mm256_sub_ps(_mm256_loadu_ps(norms + i), _mm256_mul_ps(factor, dot));
    _mm256_storeu_ps(values + i, value);
    smallest = _mm256_min_ps(value, smallest);  // the second operand where either is NaN
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, smallest);
  return *std::min_element(lanes, lanes + 8);
}

// A query's shortlist as the bank goes by in chunks: the `count` smallest estimates seen, by
// (value, index) with NaN as +inf. Those below the limit (the count-th smallest's value at the
// last compaction) are gathered; at twice `count` the count smallest are kept: a constant cost
// a candidate, not a search of the kept ones for each.
class Shortlist {
 public:
  explicit Shortlist(std::int64_t count) : count_(static_cast<std::size_t>(count)) {
    kept_.reserve(2 * count_);
  }

  // Their indices, in no order.
  std::vector<std::int64_t> ids() {
    compact();
    std::vector<std::int64_t> ids(kept_.size());
    for (std::size_t i = 0; i < kept_.size(); ++i) ids[i] = kept_[i].second;
    return ids;
  }

  // Estimates norms[i] - scale dots[i] of bank rows first + i, i < n (rows after those seen
  // before), a group at a time: a group none of whose values beats the limit is passed over at
  // the cost of its minimum (most groups, once the first `count` are in).
  void offer(const float* norms, const std::int32_t* dots, float scale, std::int64_t first,
             std::int64_t n) {
    constexpr std::int64_t kGroup = 64;
    const bool avx2 = cpu_has_avx2();
    float group[kGroup];
    for (std::int64_t at = 0; at < n; at += kGroup) {
      const std::int64_t size = std::min(kGroup, n - at);
      const float smallest = avx2 && size == kGroup
                                 ? estimate_avx2(norms + at, dots + at, scale, size, group)
                                 : estimate_scalar(norms + at, dots + at, scale, size, group);
      if (kept_.size() >= count_ && !(smallest < limit_)) continue;
      for (std::int64_t i = 0; i < size; ++i) take(group[i], first + at + i);
    }
  }

 private:
  void take(float value, std::int64_t id) {
    const float key = std::isnan(value) ? std::numeric_limits<float>::infinity() : value;
    // A later row loses ties (ids only grow): it must be below the limit once count are in.
    if (kept_.size() >= count_ && !(key < limit_)) return;
    kept_.emplace_back(key, id);
    if (kept_.size() == 2 * count_) compact();
  }
  void compact() {
    if (kept_.size() <= count_) return;
    const auto nth = kept_.begin() + static_cast<std::ptrdiff_t>(count_);
    std::nth_element(kept_.begin(), nth - 1, kept_.end());
    kept_.erase(nth, kept_.end());
    limit_ = std::max_element(kept_.begin(), kept_.end())->first;
  }

  std::size_t count_;
  std::vector<std::pair<float, std::int64_t>> kept_;  // (key, index)
  float limit_ = std::numeric_limits<float>::infinity();
};

}  // namespace

ShortlistSearch::ShortlistSearch(const at::Tensor& vectors, const ShortlistOptions& options)
    : options_(options) {
  if (vectors.dim() != 2 || vectors.size(0) == 0) {
    throw Error("nearest-neighbour search needs a non-empty M x D matrix");
  }
  if (options_.components < 1 || options_.candidates < 1) {
    throw Error("shortlist search: components and candidates must be at least 1");
  }
  // As ExactSearch centres: the same mean, so that a distance measured here is its, bit for bit.
  const at::Tensor bank = vectors.to(at::kFloat).contiguous();
  mean_ = bank.mean(0);
  centred_ = (bank - mean_).contiguous();
  const std::int64_t rows = centred_.size(0);
  const std::int64_t dim = centred_.size(1);
  candidates_ = std::min(options_.candidates, rows);
  // The leading principal directions of (a sample of) the bank: the scatter matrix in float32
  // (a third of float64's time; 1,536 dimensions: the same 128 directions to 2e-9 measured),
  // the eigenvectors in float64. Any orthonormal basis keeps the estimates lower bounds.
  const std::int64_t step =
      std::max<std::int64_t>(1, (rows + options_.basis_sample - 1) / options_.basis_sample);
  const at::Tensor sample = centred_.slice(0, 0, rows, step);
  const auto [eigenvalues, eigenvectors] =
      at::linalg_eigh(at::mm(sample.t(), sample).to(at::kDouble));
  const std::int64_t kept = std::min(options_.components, dim);
  // Ascending eigenvalues: the last columns, the largest first.
  basis_ = eigenvectors.slice(1, dim - kept, dim).flip({1}).to(at::kFloat).contiguous();
  const at::Tensor reduced = reduce(centred_, basis_);
  reduced_norms_ = reduced.pow(2).sum(1).contiguous();
  // The estimates' products in int16 (twice float32's multiply-adds per instruction on AVX2; an
  // estimate's rounding only moves which bank vectors are near the end of a shortlist), the bank
  // on its grid packed once, a chunk of rows at a time.
  const std::int64_t width = reduced.size(1) + reduced.size(1) % 2;
  const auto [grid, reduced_step] = on_grid(reduced, width);
  reduced_step_ = reduced_step;
  const std::int64_t chunk = std::min(kBankRows, rows);
  for (std::int64_t first = 0; first < rows; first += chunk) {
    std::vector<std::int64_t> ids(static_cast<std::size_t>(std::min(chunk, rows - first)));
    for (std::size_t j = 0; j < ids.size(); ++j) ids[j] = first + static_cast<std::int64_t>(j);
    panels_.push_back(pack_int16_panels(grid.data_ptr<std::int16_t>(), ids.data(),
                                        static_cast<std::int64_t>(ids.size()), width));
  }
  squared_norms_ = centred_.pow(2).sum(1).contiguous();
  norms_ = squared_norms_.sqrt().contiguous();
}

Neighbors ShortlistSearch::search_exact(const at::Tensor& queries, int k) const {
  check_request(queries, k, dim(), size());
  const at::Tensor centred = (queries.to(at::kFloat) - mean_).contiguous();
  const at::Tensor query_squared_norms = centred.pow(2).sum(1).contiguous();
  const std::int64_t count = centred.size(0);
  const std::int64_t bank_size = size();
  const std::int64_t d = dim();
  Neighbors result{at::empty({count, k}, at::kFloat), at::empty({count, k}, at::kLong)};
  const std::int64_t block = std::clamp<std::int64_t>(
      options_.max_block_bytes / (bank_size * static_cast<std::int64_t>(sizeof(float))), 1,
      std::max<std::int64_t>(count, 1));
  const double dot_error = dot_error_coefficient(Precision::kFloat32, d);
  for (std::int64_t start = 0; start < count; start += block) {
    const std::int64_t n = std::min(block, count - start);
    // A few rows (the scorer's re-measured patches and supports, one or two an image) are
    // matrix-vector products: a matrix product would first copy the whole bank into its packed
    // layout for them (a third of the held-out scoring's time in `train`, measured).
    const at::Tensor rows = centred.narrow(0, start, n);
    at::Tensor dots;
    if (n <= kFewRows) {
      dots = at::empty({n, bank_size}, at::kFloat);
      for (std::int64_t r = 0; r < n; ++r) {
        at::Tensor out = dots[r];
        at::mv_out(out, centred_, rows[r]);
      }
    } else {
      dots = at::mm(rows, centred_.t()).contiguous();
    }
    at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<float> scratch;
      for (std::int64_t r = begin; r < end; ++r) {
        const std::int64_t q = start + r;
        const float squared_norm = query_squared_norms.data_ptr<float>()[q];
        const RowContext context{centred.data_ptr<float>() + q * d,
                                 squared_norm,
                                 std::sqrt(squared_norm),
                                 centred_.data_ptr<float>(),
                                 nullptr,
                                 nullptr,
                                 squared_norms_.data_ptr<float>(),
                                 norms_.data_ptr<float>(),
                                 bank_size,
                                 d,
                                 dot_error};
        TopK exact(k);
        scan(context, dots.data_ptr<float>() + r * bank_size, nullptr, scratch, exact);
        write_answer(exact, result.distances.data_ptr<float>() + q * k,
                     result.indices.data_ptr<std::int64_t>() + q * k);
      }
    });
  }
  return result;
}

Neighbors ShortlistSearch::search(const at::Tensor& queries, int k) const {
  if (queries.dim() != 2 || queries.size(1) != dim()) {
    throw Error("nearest-neighbour search: queries must be N x " + std::to_string(dim()));
  }
  if (k < 1 || k > candidates_) {
    throw Error("shortlist search: k = " + std::to_string(k) + " but the shortlist holds " +
                std::to_string(candidates_) + " vectors");
  }
  const at::Tensor centred = (queries.to(at::kFloat) - mean_).contiguous();
  const at::Tensor reduced = reduce(centred, basis_);
  const std::int64_t count = centred.size(0);
  Neighbors result{at::empty({count, k}, at::kFloat), at::empty({count, k}, at::kLong)};
  if (count == 0) return result;
  // The queries on their own grid: x.y ~ step * reduced_step_ * (their integers' product).
  const std::int64_t width = panels_.front().dim;
  const auto [grid, step] = on_grid(reduced, width);
  const std::int16_t* grid_rows = grid.data_ptr<std::int16_t>();
  const auto scale = static_cast<float>(2 * step * reduced_step_);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(count));
  for (std::int64_t q = 0; q < count; ++q)
    ids[static_cast<std::size_t>(q)] = static_cast<std::int32_t>(q);
  const float* norms = reduced_norms_.data_ptr<float>();
  const float* bank = centred_.data_ptr<float>();
  const std::int64_t d = dim();
  std::int64_t widest = 0;
  for (const Int16Panels& panels : panels_) widest = std::max(widest, panels.count);
  // Each thread takes a few queries at a time through every chunk of the bank, in order (ids
  // only grow): the same answer whatever the number of threads.
  at::parallel_for(0, count, kQueryRows, [&](std::int64_t begin, std::int64_t end) {
    std::vector<std::int32_t> dots(static_cast<std::size_t>(kQueryRows * widest));
    for (std::int64_t start = begin; start < end; start += kQueryRows) {
      const std::int64_t n = std::min(kQueryRows, end - start);
      std::vector<Shortlist> shortlists(static_cast<std::size_t>(n), Shortlist(candidates_));
      std::int64_t first = 0;
      for (const Int16Panels& panels : panels_) {
        // |y|^2 - 2 x.y of the reduced vectors: the estimate's order for each query.
        int16_products(grid_rows, ids.data() + start, n, panels, dots.data());
        for (std::int64_t r = 0; r < n; ++r) {
          shortlists[static_cast<std::size_t>(r)].offer(
              norms + first, dots.data() + r * panels.count, scale, first, panels.count);
        }
        first += panels.count;
      }
      for (std::int64_t r = 0; r < n; ++r) {
        const std::int64_t q = start + r;
        const float* query = centred.data_ptr<float>() + q * d;
        TopK exact(k);
        for (const std::int64_t j : shortlists[static_cast<std::size_t>(r)].ids()) {
          exact.offer(squared_distance(query, bank + j * d, d), j);
        }
        write_answer(exact, result.distances.data_ptr<float>() + q * k,
                     result.indices.data_ptr<std::int64_t>() + q * k);
      }
    }
  });
  return result;
}

}  // namespace pv::search
