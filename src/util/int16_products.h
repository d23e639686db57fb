// Dot products of 16-bit integer vectors accumulated in int32, one at a time or a block of them
// at once: exact (no rounding at all) when |a| |b| < 2^31 (every partial sum of a.b is then below
// it too, by Cauchy-Schwarz on the partial vectors), which the caller's grid guarantees
// (int16_grid_step). On AVX2 a block runs on vpmaddwd, 16 multiply-adds per instruction where
// float32's FMA does 8, so twice the products per cycle of a float32 matrix product; with
// AVX512-VNNI on vpdpwssd, 32 multiply-adds and the sum in one instruction. Every kernel gives
// the same integers.
// Stateless; every function may run concurrently.
#pragma once

#include <cstdint>
#include <vector>

namespace pv {

// Columns a block of products multiplies by: `count` vectors in panels of 16, each panel the
// vectors' values two by two (the pairs vpmaddwd takes), zero-padded to a multiple of 16 vectors.
struct Int16Panels {
  std::int64_t count = 0;  // vectors
  std::int64_t dim = 0;    // values per vector, even
  std::vector<std::int16_t> values;
};

// Packs the vectors base + rows[j] * dim, j < count (`dim` even).
Int16Panels pack_int16_panels(const std::int16_t* base, const std::int64_t* rows,
                              std::int64_t count, std::int64_t dim);

// The implementations; each gives the same integers.
enum class Int16Kernel { kScalar, kAvx2, kAvx512Vnni };
// Those this CPU runs (AVX512-VNNI, AVX2: read from CPUID), fastest first; kScalar always.
std::vector<Int16Kernel> int16_kernels();
// "avx512_vnni", "avx2", "scalar".
const char* int16_kernel_name(Int16Kernel kernel);

// out[r * panels.count + j] = (base + rows[r] * panels.dim) . vector j, for r < count: a block of
// `count` x panels.count products, on the fastest kernel (or on `kernel`, which this CPU must run).
void int16_products(const std::int16_t* base, const std::int32_t* rows, std::int64_t count,
                    const Int16Panels& panels, std::int32_t* out);
void int16_products(Int16Kernel kernel, const std::int16_t* base, const std::int32_t* rows,
                    std::int64_t count, const Int16Panels& panels, std::int32_t* out);

// The step of a grid for vectors of `dim` values whose coordinates are at most `largest` and
// lengths at most `longest` in magnitude: a power of two (grid points are exact in float and
// double), the finest on which every rounded vector's integers fit int16 and its length stays
// below sqrt(2^31), so that the product of any two such vectors is exact in int32. 1 when
// `largest` is 0; throws pv::Error when either bound is not finite.
double int16_grid_step(double largest, double longest, std::int64_t dim);

// The bounds int16_grid_step() takes, of `rows` x `dim` float32 values (row-major): the largest
// magnitude and the longest row's length (summed in double). `finite` is false, and the bounds
// meaningless, when a value is NaN or infinite.
struct Int16GridBounds {
  double largest = 0;
  double longest = 0;
  bool finite = true;
};
Int16GridBounds int16_grid_bounds(const float* values, std::int64_t rows, std::int64_t dim);

// `values` (rows x dim, row-major) on the grid of `step` (a power of two from int16_grid_step()
// for them): out[r * width + c] = round(values[r * dim + c] / step), halves to even, and zeros
// from dim to width. The only rounding is to the integer: a coordinate moves by at most half a
// step. No copies beyond `out`.
void to_int16_grid(const float* values, std::int64_t rows, std::int64_t dim, double step,
                   std::int16_t* out, std::int64_t width);

// One dot product of `dim` values (any dim).
using Int16DotFn = std::int32_t (*)(const std::int16_t* a, const std::int16_t* b, std::int64_t dim);
// The fastest implementation for this CPU, or `kernel`'s (which this CPU must run).
Int16DotFn int16_dot();
Int16DotFn int16_dot(Int16Kernel kernel);
// The portable ones.
std::int32_t int16_dot_scalar(const std::int16_t* a, const std::int16_t* b, std::int64_t dim);
void int16_products_scalar(const std::int16_t* base, const std::int32_t* rows, std::int64_t count,
                           const Int16Panels& panels, std::int32_t* out);

}  // namespace pv
