#include "util/int16_products.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <immintrin.h>

#include <patchvec/error.h>
#include <patchvec/system.h>

namespace pv {
namespace {

constexpr std::int64_t kPanel = 16;      // vectors per panel: two registers of 8 int32 sums
constexpr std::int64_t kRowBlock = 192;  // rows multiplied by one panel before the next one

// The pair of values at row[k], row[k + 1] as one 32-bit word (what vpmaddwd pairs up).
inline std::int32_t pair_at(const std::int16_t* row, std::int64_t k) {
  std::int32_t pair = 0;
  std::memcpy(&pair, row + k, sizeof pair);
  return pair;
}

// R rows (at most 6: 12 accumulators, two panel registers and a broadcast fit the 16 registers)
// times one panel: out[r][0..cols).
template <int R>
__attribute__((target("avx2"))) void tile_avx2(const std::int16_t* const* a,
                                               const std::int16_t* panel, std::int64_t pairs,
                                               std::int32_t* const* out, std::int64_t cols) {
  __m256i low[R];
  __m256i high[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    low[r] = _mm256_setzero_si256();
    high[r] = _mm256_setzero_si256();
  }
  for (std::int64_t p = 0; p < pairs; ++p) {
    const auto* column = reinterpret_cast<const __m256i*>(panel + p * 2 * kPanel);
    const __m256i b0 = _mm256_loadu_si256(column);
    const __m256i b1 = _mm256_loadu_si256(column + 1);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256i x = _mm256_set1_epi32(pair_at(a[r], 2 * p));
      low[r] = _mm256_add_epi32(low[r], _mm256_madd_epi16(x, b0));
      high[r] = _mm256_add_epi32(high[r], _mm256_madd_epi16(x, b1));
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    if (cols == kPanel) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[r]), low[r]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[r] + 8), high[r]);
    } else {
      alignas(32) std::int32_t sums[kPanel];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums), low[r]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8), high[r]);
      std::copy(sums, sums + cols, out[r]);
    }
  }
}

__attribute__((target("avx2"))) void products_avx2(const std::int16_t* base,
                                                   const std::int32_t* rows, std::int64_t count,
                                                   const Int16Panels& panels, std::int32_t* out) {
  const std::int64_t pairs = panels.dim / 2;
  const std::int64_t n = panels.count;
  const std::int64_t panel_count = (n + kPanel - 1) / kPanel;
  for (std::int64_t block = 0; block < count; block += kRowBlock) {
    const std::int64_t block_end = std::min(count, block + kRowBlock);
    for (std::int64_t q = 0; q < panel_count; ++q) {
      const std::int16_t* panel = panels.values.data() + q * pairs * 2 * kPanel;
      const std::int64_t cols = std::min(kPanel, n - q * kPanel);
      for (std::int64_t r = block; r < block_end; r += 6) {
        const std::int64_t tile = std::min<std::int64_t>(6, block_end - r);
        const std::int16_t* a[6];
        std::int32_t* o[6];
        for (std::int64_t i = 0; i < tile; ++i) {
          a[i] = base + static_cast<std::int64_t>(rows[r + i]) * panels.dim;
          o[i] = out + (r + i) * n + q * kPanel;
        }
        switch (tile) {
          case 6:
            tile_avx2<6>(a, panel, pairs, o, cols);
            break;
          case 5:
            tile_avx2<5>(a, panel, pairs, o, cols);
            break;
          case 4:
            tile_avx2<4>(a, panel, pairs, o, cols);
            break;
          case 3:
            tile_avx2<3>(a, panel, pairs, o, cols);
            break;
          case 2:
            tile_avx2<2>(a, panel, pairs, o, cols);
            break;
          default:
            tile_avx2<1>(a, panel, pairs, o, cols);
            break;
        }
      }
    }
  }
}

__attribute__((target("avx2"))) std::int32_t dot_avx2(const std::int16_t* a, const std::int16_t* b,
                                                      std::int64_t dim) {
  __m256i sum = _mm256_setzero_si256();
  std::int64_t k = 0;
  for (; k + 16 <= dim; k += 16) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k));
    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(x, y));
  }
  __m128i half = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4e));
  half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0xb1));
  std::int32_t total = _mm_cvtsi128_si32(half);
  for (; k < dim; ++k) total += static_cast<std::int32_t>(a[k]) * b[k];
  return total;
}

// AVX512-VNNI: vpdpwssd multiplies 32 int16 pairs and adds them to 16 int32 sums in one
// instruction (vpmaddwd and vpaddd in one, twice AVX2's width): one register holds a whole
// panel's sums. R rows times P panels (at most 8 x 2: 16 accumulators of the 32 registers).
template <int R, int P>
__attribute__((target("avx512f,avx512vnni"))) void tile_avx512(
    const std::int16_t* const* a, const std::int16_t* panel, std::int64_t panel_stride,
    std::int64_t pairs, std::int32_t* const* out, std::int64_t out_stride, std::int64_t cols) {
  __m512i sums[R][P];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) sums[r][q] = _mm512_setzero_si512();
  }
  for (std::int64_t p = 0; p < pairs; ++p) {
    __m512i b[P];
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q)
      b[q] = _mm512_loadu_si512(panel + q * panel_stride + p * 2 * kPanel);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i x = _mm512_set1_epi32(pair_at(a[r], 2 * p));
#pragma GCC unroll 2
      for (int q = 0; q < P; ++q) sums[r][q] = _mm512_dpwssd_epi32(sums[r][q], x, b[q]);
    }
  }
  // Only the last panel may be partial: `cols` columns of it.
  const auto last = static_cast<__mmask16>((1u << cols) - 1u);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) {
      std::int32_t* o = out[r] + q * out_stride;
      if (q + 1 < P || cols == kPanel) {
        _mm512_storeu_si512(o, sums[r][q]);
      } else {
        _mm512_mask_storeu_epi32(o, last, sums[r][q]);
      }
    }
  }
}

// tile_avx512<R, P> for R = 1..8, by R - 1.
using TileAvx512 = void (*)(const std::int16_t* const*, const std::int16_t*, std::int64_t,
                            std::int64_t, std::int32_t* const*, std::int64_t, std::int64_t);
template <int P, int... R>
constexpr std::array<TileAvx512, sizeof...(R)> avx512_tiles(std::integer_sequence<int, R...>) {
  return {&tile_avx512<R + 1, P>...};
}
constexpr auto kTiles1 = avx512_tiles<1>(std::make_integer_sequence<int, 8>());
constexpr auto kTiles2 = avx512_tiles<2>(std::make_integer_sequence<int, 8>());

__attribute__((target("avx512f,avx512vnni"))) void products_avx512(const std::int16_t* base,
                                                                   const std::int32_t* rows,
                                                                   std::int64_t count,
                                                                   const Int16Panels& panels,
                                                                   std::int32_t* out) {
  constexpr std::int64_t kTileRows = 8;
  const std::int64_t pairs = panels.dim / 2;
  const std::int64_t n = panels.count;
  const std::int64_t panel_count = (n + kPanel - 1) / kPanel;
  const std::int64_t panel_stride = pairs * 2 * kPanel;
  for (std::int64_t block = 0; block < count; block += kRowBlock) {
    const std::int64_t block_end = std::min(count, block + kRowBlock);
    for (std::int64_t q = 0; q < panel_count; q += 2) {
      const std::int16_t* panel = panels.values.data() + q * panel_stride;
      const bool two = q + 1 < panel_count;
      const std::int64_t cols = std::min(kPanel, n - (q + (two ? 1 : 0)) * kPanel);
      for (std::int64_t r = block; r < block_end; r += kTileRows) {
        const auto tile = static_cast<int>(std::min(kTileRows, block_end - r));
        const std::int16_t* a[kTileRows];
        std::int32_t* o[kTileRows];
        for (int i = 0; i < tile; ++i) {
          a[i] = base + static_cast<std::int64_t>(rows[r + i]) * panels.dim;
          o[i] = out + (r + i) * n + q * kPanel;
        }
        const auto& tiles = two ? kTiles2 : kTiles1;
        tiles[static_cast<std::size_t>(tile - 1)](a, panel, panel_stride, pairs, o, kPanel, cols);
      }
    }
  }
}

__attribute__((target("avx512f,avx512vnni"))) std::int32_t dot_avx512(const std::int16_t* a,
                                                                      const std::int16_t* b,
                                                                      std::int64_t dim) {
  __m512i sum = _mm512_setzero_si512();
  std::int64_t k = 0;
  for (; k + 32 <= dim; k += 32) {
    sum = _mm512_dpwssd_epi32(sum, _mm512_loadu_si512(a + k), _mm512_loadu_si512(b + k));
  }
  alignas(64) std::int32_t lanes[16];
  _mm512_store_si512(lanes, sum);
  std::int32_t total = 0;
  for (const std::int32_t lane : lanes) total += lane;
  for (; k < dim; ++k) total += static_cast<std::int32_t>(a[k]) * b[k];
  return total;
}

}  // namespace

double int16_grid_step(double largest, double longest, std::int64_t dim) {
  if (!std::isfinite(largest) || !std::isfinite(longest)) {
    throw Error("int16 grid: the values are not all finite");
  }
  if (!(largest > 0)) return 1;
  // Rounding moves a vector by at most sqrt(dim) / 2 grid units: room is left for it.
  const double length_limit = 46340.0 - std::sqrt(static_cast<double>(dim)) / 2 - 1;
  const double needed = std::max(largest / 32767.0, longest / length_limit);
  return std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(needed))));
}

Int16GridBounds int16_grid_bounds(const float* values, std::int64_t rows, std::int64_t dim) {
  Int16GridBounds bounds;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = values + r * dim;
    double squared = 0;
    for (std::int64_t c = 0; c < dim; ++c) {
      const double v = row[c];
      bounds.finite = bounds.finite && std::isfinite(v);
      bounds.largest = std::max(bounds.largest, std::abs(v));
      squared += v * v;
    }
    bounds.longest = std::max(bounds.longest, std::sqrt(squared));
  }
  return bounds;
}

void to_int16_grid(const float* values, std::int64_t rows, std::int64_t dim, double step,
                   std::int16_t* out, std::int64_t width) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = values + r * dim;
    std::int16_t* integers = out + r * width;
    for (std::int64_t c = 0; c < dim; ++c) {
      integers[c] = static_cast<std::int16_t>(std::nearbyint(static_cast<double>(row[c]) / step));
    }
    std::fill(integers + dim, integers + width, std::int16_t{0});
  }
}

Int16Panels pack_int16_panels(const std::int16_t* base, const std::int64_t* rows,
                              std::int64_t count, std::int64_t dim) {
  Int16Panels panels{.count = count, .dim = dim};
  const std::int64_t pairs = dim / 2;
  const std::int64_t panel_count = (count + kPanel - 1) / kPanel;
  panels.values.assign(static_cast<std::size_t>(panel_count * pairs * 2 * kPanel), 0);
  for (std::int64_t j = 0; j < count; ++j) {
    const std::int16_t* vector = base + rows[j] * dim;
    std::int16_t* panel = panels.values.data() + (j / kPanel) * pairs * 2 * kPanel;
    const std::int64_t column = j % kPanel;
    for (std::int64_t p = 0; p < pairs; ++p) {
      panel[p * 2 * kPanel + column * 2] = vector[2 * p];
      panel[p * 2 * kPanel + column * 2 + 1] = vector[2 * p + 1];
    }
  }
  return panels;
}

void int16_products_scalar(const std::int16_t* base, const std::int32_t* rows, std::int64_t count,
                           const Int16Panels& panels, std::int32_t* out) {
  const std::int64_t pairs = panels.dim / 2;
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int16_t* a = base + static_cast<std::int64_t>(rows[r]) * panels.dim;
    for (std::int64_t j = 0; j < panels.count; ++j) {
      const std::int16_t* panel = panels.values.data() + (j / kPanel) * pairs * 2 * kPanel;
      const std::int64_t column = j % kPanel;
      std::int32_t sum = 0;
      for (std::int64_t p = 0; p < pairs; ++p) {
        sum += a[2 * p] * panel[p * 2 * kPanel + column * 2] +
               a[2 * p + 1] * panel[p * 2 * kPanel + column * 2 + 1];
      }
      out[r * panels.count + j] = sum;
    }
  }
}

const char* int16_kernel_name(Int16Kernel kernel) {
  switch (kernel) {
    case Int16Kernel::kAvx512Vnni:
      return "avx512_vnni";
    case Int16Kernel::kAvx2:
      return "avx2";
    case Int16Kernel::kScalar:
      break;
  }
  return "scalar";
}

std::vector<Int16Kernel> int16_kernels() {
  std::vector<Int16Kernel> kernels;
  if (cpu_has_avx512_vnni()) kernels.push_back(Int16Kernel::kAvx512Vnni);
  if (cpu_has_avx2()) kernels.push_back(Int16Kernel::kAvx2);
  kernels.push_back(Int16Kernel::kScalar);
  return kernels;
}

void int16_products(const std::int16_t* base, const std::int32_t* rows, std::int64_t count,
                    const Int16Panels& panels, std::int32_t* out) {
  static const Int16Kernel fastest = int16_kernels().front();
  int16_products(fastest, base, rows, count, panels, out);
}

void int16_products(Int16Kernel kernel, const std::int16_t* base, const std::int32_t* rows,
                    std::int64_t count, const Int16Panels& panels, std::int32_t* out) {
  switch (kernel) {
    case Int16Kernel::kAvx512Vnni:
      products_avx512(base, rows, count, panels, out);
      break;
    case Int16Kernel::kAvx2:
      products_avx2(base, rows, count, panels, out);
      break;
    case Int16Kernel::kScalar:
      int16_products_scalar(base, rows, count, panels, out);
      break;
  }
}

std::int32_t int16_dot_scalar(const std::int16_t* a, const std::int16_t* b, std::int64_t dim) {
  std::int32_t sum = 0;
  for (std::int64_t k = 0; k < dim; ++k) sum += static_cast<std::int32_t>(a[k]) * b[k];
  return sum;
}

Int16DotFn int16_dot(Int16Kernel kernel) {
  switch (kernel) {
    case Int16Kernel::kAvx512Vnni:
      return &dot_avx512;
    case Int16Kernel::kAvx2:
      return &dot_avx2;
    case Int16Kernel::kScalar:
      break;
  }
  return &int16_dot_scalar;
}

Int16DotFn int16_dot() {
  return int16_dot(int16_kernels().front());
}

}  // namespace pv
