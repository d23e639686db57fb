#include "sampling/bf16_dot.h"

#include <bit>

// GCC 12 flags the _mm512_undefined_* placeholders inside its own intrinsic headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

namespace pv::sampling {
namespace {

float widen(Bf16 bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) float dot_avx512bf16(const Bf16* a,
                                                                            const Bf16* b,
                                                                            std::int64_t dim) {
  __m512 sum = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    const auto x = (__m512bh)_mm512_loadu_si512(a + i);
    const auto y = (__m512bh)_mm512_loadu_si512(b + i);
    sum = _mm512_dpbf16_ps(sum, x, y);
  }
  if (i < dim) {
    const __mmask32 tail = (1u << (dim - i)) - 1;
    const auto x = (__m512bh)_mm512_maskz_loadu_epi16(tail, a + i);
    const auto y = (__m512bh)_mm512_maskz_loadu_epi16(tail, b + i);
    sum = _mm512_dpbf16_ps(sum, x, y);
  }
  return _mm512_reduce_add_ps(sum);
}

// bf16 -> float32 is a 16-bit left shift of the bit pattern.
__attribute__((target("avx512f,avx512bw"))) inline __m512 widen16(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

__attribute__((target("avx2"))) inline __m256 widen8(__m128i bits) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) float dot_avx512(const Bf16* a, const Bf16* b,
                                                                      std::int64_t dim) {
  __m512 sum = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m512 x = widen16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    const __m512 y = widen16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)));
    sum = _mm512_fmadd_ps(x, y, sum);
  }
  if (i < dim) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (dim - i)) - 1);
    const __m512 x = widen16(_mm256_maskz_loadu_epi16(tail, a + i));
    const __m512 y = widen16(_mm256_maskz_loadu_epi16(tail, b + i));
    sum = _mm512_fmadd_ps(x, y, sum);
  }
  return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) float dot_avx2(const Bf16* a, const Bf16* b, std::int64_t dim) {
  __m256 sum = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    const __m256 x = widen8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256 y = widen8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    sum = _mm256_fmadd_ps(x, y, sum);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0;
  for (const float lane : lanes) total += lane;
  for (; i < dim; ++i) total += widen(a[i]) * widen(b[i]);
  return total;
}

}  // namespace

float bf16_dot_scalar(const Bf16* a, const Bf16* b, std::int64_t dim) {
  float total = 0;
  for (std::int64_t i = 0; i < dim; ++i) total += widen(a[i]) * widen(b[i]);
  return total;
}

Bf16DotFn bf16_dot() {
  static const Bf16DotFn chosen = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw")) {
      return &dot_avx512bf16;
    }
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
      return &dot_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &dot_avx2;
    return &bf16_dot_scalar;
  }();
  return chosen;
}

}  // namespace pv::sampling
