#include "search/exact_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
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

// The k best (smallest) values seen so far, kept sorted; k is small (1 to a few dozen).
class TopK {
 public:
  explicit TopK(int k) : k_(k) {}
  float worst() const {
    return static_cast<int>(values_.size()) < k_ ? std::numeric_limits<float>::infinity()
                                                 : values_.back();
  }
  // Until k values are kept every value is taken, infinite ones too (a vector whose distance
  // overflows is still a neighbour when fewer than k are nearer).
  void offer(float value, std::int64_t index) {
    const bool full = static_cast<int>(values_.size()) == k_;
    if (full && !(value < values_.back())) return;
    if (full) {
      values_.pop_back();
      indices_.pop_back();
    }
    const auto at = std::upper_bound(values_.begin(), values_.end(), value) - values_.begin();
    values_.insert(values_.begin() + at, value);
    indices_.insert(indices_.begin() + at, index);
  }
  bool contains(std::int64_t index) const {
    return std::find(indices_.begin(), indices_.end(), index) != indices_.end();
  }
  const std::vector<float>& values() const { return values_; }
  const std::vector<std::int64_t>& indices() const { return indices_; }

 private:
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

// One query against the whole bank, given its first-pass products `dots` (length M).
template <typename T>
void scan_row(const RowContext& c, const T* dots, int k, std::vector<float>& scratch,
              float* out_distances, std::int64_t* out_indices) {
  scratch.resize(2 * static_cast<std::size_t>(c.size));
  float* approx = scratch.data();
  float* lower = approx + c.size;
  first_pass(c, dots, approx, lower);
  // 1. The k best by the first pass, measured exactly: their k-th distance bounds the answer.
  TopK first(k);
  if (k == 1) {
    const auto best = std::min_element(approx, approx + c.size) - approx;
    first.offer(approx[best], best);
  } else {
    for (std::int64_t j = 0; j < c.size; ++j) first.offer(approx[j], j);
  }
  TopK exact(k);
  for (const auto j : first.indices()) exact.offer(c.distance(j), j);
  // 2. Every other vector whose first-pass distance could be wrong by enough to beat it.
  for (std::int64_t j = 0; j < c.size; ++j) {
    const float limit = exact.worst();
    if (lower[j] > limit + limit * 1e-6f) continue;
    if (first.contains(j)) continue;
    exact.offer(c.distance(j), j);
  }
  for (int i = 0; i < k; ++i) {
    out_distances[i] = std::sqrt(std::max(exact.values()[i], 0.0f));
    out_indices[i] = exact.indices()[i];
  }
}

}  // namespace

ExactSearch::ExactSearch(const at::Tensor& vectors, const SearchOptions& options)
    : options_(options) {
  if (vectors.dim() != 2 || vectors.size(0) == 0) {
    throw Error("nearest-neighbour search needs a non-empty M x D matrix");
  }
  const bool half = vectors.scalar_type() == at::kBFloat16;
  const at::Tensor bank = vectors.to(at::kFloat).contiguous();
  mean_ = bank.mean(0);
  at::Tensor centred = (bank - mean_).contiguous();
  squared_norms_ = centred.pow(2).sum(1).contiguous();
  norms_ = squared_norms_.sqrt().contiguous();
  precision_ = options.precision;
  if (precision_ == Precision::kAuto) {
    precision_ = cpu_has_native_bf16() ? Precision::kBFloat16 : Precision::kFloat32;
  }
  filter_ = precision_ == Precision::kBFloat16 ? centred.to(at::kBFloat16).contiguous() : centred;
  if (half) {
    raw_ = vectors.contiguous();  // the exact step measures these; no float32 copy is kept
  } else {
    centred_ = std::move(centred);
  }
}

Neighbors ExactSearch::search(const at::Tensor& queries, int k) const {
  if (queries.dim() != 2 || queries.size(1) != dim()) {
    throw Error("nearest-neighbour search: queries must be N x " + std::to_string(dim()));
  }
  if (k < 1 || k > size()) {
    throw Error("nearest-neighbour search: k = " + std::to_string(k) + " but the bank holds " +
                std::to_string(size()) + " vectors");
  }
  const at::Tensor raw = queries.to(at::kFloat).contiguous();
  const at::Tensor centred = (raw - mean_).contiguous();
  const at::Tensor squared_norms = centred.pow(2).sum(1).contiguous();
  const std::int64_t count = centred.size(0);
  Neighbors result{at::empty({count, k}, at::kFloat), at::empty({count, k}, at::kLong)};

  const std::int64_t element_bytes = filter_.element_size();
  const std::int64_t block = std::clamp<std::int64_t>(
      options_.max_block_bytes / std::max<std::int64_t>(size() * element_bytes, 1), 1, count);
  const double dot_error = dot_error_coefficient(precision_, dim());
  for (std::int64_t start = 0; start < count; start += block) {
    const std::int64_t rows = std::min(block, count - start);
    const at::Tensor query_block = centred.narrow(0, start, rows);
    const at::Tensor dots =
        at::mm(precision_ == Precision::kBFloat16 ? query_block.to(at::kBFloat16) : query_block,
               filter_.t())
            .contiguous();
    at::parallel_for(0, rows, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<float> scratch;
      for (std::int64_t r = begin; r < end; ++r) {
        const std::int64_t q = start + r;
        const RowContext context{centred.data_ptr<float>() + q * dim(),
                                 squared_norms.data_ptr<float>()[q],
                                 std::sqrt(squared_norms.data_ptr<float>()[q]),
                                 centred_.defined() ? centred_.data_ptr<float>() : nullptr,
                                 raw.data_ptr<float>() + q * dim(),
                                 raw_.defined() ? raw_.data_ptr<c10::BFloat16>() : nullptr,
                                 squared_norms_.data_ptr<float>(),
                                 norms_.data_ptr<float>(),
                                 size(),
                                 dim(),
                                 dot_error};
        float* out_distances = result.distances.data_ptr<float>() + q * k;
        std::int64_t* out_indices = result.indices.data_ptr<std::int64_t>() + q * k;
        if (precision_ == Precision::kBFloat16) {
          scan_row(context, dots.data_ptr<c10::BFloat16>() + r * size(), k, scratch, out_distances,
                   out_indices);
        } else {
          scan_row(context, dots.data_ptr<float>() + r * size(), k, scratch, out_distances,
                   out_indices);
        }
      }
    });
  }
  return result;
}

}  // namespace pv::search
