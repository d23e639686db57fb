// The pieces a search of a bank is made of, shared by the whole bank's search
// (exact_search.cpp) and the partitioned one (clusters.cpp): rounding-error bounds, exact
// distances, the k best kept so far, and one query's scan of a run of bank rows. Internal.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>

#include "search/exact_search.h"

namespace pv::search::detail {

constexpr double kFloatUnitRoundoff = 1.0 / (1 << 24);    // 2^-24
constexpr double kBFloat16UnitRoundoff = 1.0 / (1 << 8);  // 2^-8
// A bound on the relative error of a float32 squared distance summed over `dim` terms.
inline double distance_roundoff(std::int64_t dim) {
  return 1.1 * static_cast<double>(dim + 2) * kFloatUnitRoundoff;
}

// |computed x.y - exact x.y| <= coefficient * ||x|| ||y|| for the first pass's product.
inline double dot_error_coefficient(Precision precision, std::int64_t dim) {
  const double accumulation = 1.1 * static_cast<double>(dim) * kFloatUnitRoundoff;  // fp32 sums
  if (precision == Precision::kFloat32) return accumulation + kFloatUnitRoundoff;
  // Inputs rounded to bf16 (2u + u^2), the result rounded to bf16 (u), fp32 accumulation.
  const double u = kBFloat16UnitRoundoff;
  return 3 * u + 4 * u * u + accumulation * (1 + 3 * u);
}

// Throws pv::Error unless `queries` is Q x `dim` and 1 <= k <= `bank_size`: a search's request.
void check_request(const at::Tensor& queries, int k, std::int64_t dim, std::int64_t bank_size);

// The exact squared distance between two float32 vectors, and between a float32 vector and a
// bfloat16 one as if the latter were widened to float32 first.
float squared_distance(const float* a, const float* b, std::int64_t dim);
float squared_distance(const float* a, const c10::BFloat16* b, std::int64_t dim);

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
  // Products on an int16 grid (exact_search.h): the value of one unit of an int32 product, and
  // the bound on its error, norm_error * ||y|| + constant_error (dot_error is then 0).
  float grid_unit = 0;
  double norm_error = 0;
  double constant_error = 0;

  // The exact squared distance to bank vector j (distances do not depend on the centring).
  float distance(std::int64_t j) const {
    return bank != nullptr ? squared_distance(query, bank + j * dim, dim)
                           : squared_distance(raw_query, raw_bank + j * dim, dim);
  }
};

// First-pass squared distances `approx` and, for each, a lower bound `lower` on the true squared
// distance, given the query's products `dots` with the context's rows.
void first_pass(const RowContext& c, const float* dots, float* approx, float* lower);
void first_pass(const RowContext& c, const at::BFloat16* dots, float* approx, float* lower);
void first_pass(const RowContext& c, const std::int32_t* dots, float* approx, float* lower);

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

inline void write_answer(const TopK& exact, float* out_distances, std::int64_t* out_indices) {
  for (int i = 0; i < exact.k(); ++i) {
    out_distances[i] = std::sqrt(std::max(exact.values()[i], 0.0f));
    out_indices[i] = exact.indices()[i];
  }
}

}  // namespace pv::search::detail

namespace pv::search {

// The queries of one search() call.
struct ExactSearch::Rows {
  at::Tensor raw;            // Q x D float32, as given
  at::Tensor centred;        // Q x D float32, at the bank's mean
  at::Tensor squared_norms;  // Q, of the centred rows

  // Query q against `size` stored bank rows from `first` on.
  detail::RowContext context(const ExactSearch& s, std::int64_t q, std::int64_t first,
                             std::int64_t size, double dot_error) const {
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

}  // namespace pv::search
