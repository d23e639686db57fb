#include "search/scan.h"

#include <string>

#include <patchvec/error.h>

namespace pv::search::detail {

void check_request(const at::Tensor& queries, int k, std::int64_t dim, std::int64_t bank_size) {
  if (queries.dim() != 2 || queries.size(1) != dim) {
    throw Error("nearest-neighbour search: queries must be N x " + std::to_string(dim));
  }
  if (k < 1 || k > bank_size) {
    throw Error("nearest-neighbour search: k = " + std::to_string(k) + " but the bank holds " +
                std::to_string(bank_size) + " vectors");
  }
}

namespace {

float to_float(float value, float /*unit*/) {
  return value;
}
float to_float(c10::BFloat16 value, float /*unit*/) {
  return static_cast<float>(value);
}
// Exact: the unit is a power of two (its product with a rounded integer is not rounded again).
float to_float(std::int32_t value, float unit) {
  return unit * static_cast<float>(value);
}

// First-pass squared distances and, for each, a lower bound on the true squared distance. The
// body is shared; the two entry points below are compiled for each instruction set (clang
// cannot clone templates).
template <typename T>
inline __attribute__((always_inline)) void first_pass_body(const RowContext& c, const T* dots,
                                                           float* approx, float* lower) {
  // The product's error, (dot_error ||x|| + norm_error) ||y|| + constant_error, twice.
  const auto scale = static_cast<float>(2 * (c.dot_error * c.query_norm + c.norm_error));
  const auto offset = static_cast<float>(2 * c.constant_error);
  // The rounding of the sum itself, and of the two squared norms (sums of D positive terms).
  const auto roundoff = static_cast<float>(8 * kFloatUnitRoundoff + distance_roundoff(c.dim));
  for (std::int64_t j = 0; j < c.size; ++j) {
    const float a =
        c.query_squared_norm + c.bank_squared_norms[j] - 2 * to_float(dots[j], c.grid_unit);
    approx[j] = a;
    lower[j] = a - scale * c.bank_norms[j] - offset -
               roundoff * (c.query_squared_norm + c.bank_squared_norms[j]);
  }
}

}  // namespace

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

__attribute__((target_clones("avx512f", "avx2", "default"))) void first_pass(
    const RowContext& c, const std::int32_t* dots, float* approx, float* lower) {
  first_pass_body(c, dots, approx, lower);
}

}  // namespace pv::search::detail
