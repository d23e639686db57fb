#include "util/int16_products.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/system.h>

namespace pv {
namespace {

// Values up to the largest magnitude that keeps a dot product of `dim` values exact in int32.
std::vector<std::int16_t> random_values(std::int64_t count, std::int64_t dim, std::uint32_t seed) {
  const auto limit = static_cast<int>(std::min(32767.0, std::floor(std::sqrt(2147483647.0 / dim))));
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> value(-limit, limit);
  std::vector<std::int16_t> values(static_cast<std::size_t>(count * dim));
  for (auto& v : values) v = static_cast<std::int16_t>(value(random));
  return values;
}

std::int64_t exact_dot(const std::int16_t* a, const std::int16_t* b, std::int64_t dim) {
  std::int64_t sum = 0;
  for (std::int64_t k = 0; k < dim; ++k) sum += static_cast<std::int64_t>(a[k]) * b[k];
  return sum;
}

TEST(Int16Products, TheKernelsThisCpuRunsFastestFirst) {
  const std::vector<Int16Kernel> kernels = int16_kernels();
  ASSERT_FALSE(kernels.empty());
  EXPECT_EQ(kernels.back(), Int16Kernel::kScalar);
  const auto has = [&](Int16Kernel k) {
    return std::find(kernels.begin(), kernels.end(), k) != kernels.end();
  };
  EXPECT_EQ(has(Int16Kernel::kAvx2), cpu_has_avx2());
  EXPECT_EQ(has(Int16Kernel::kAvx512Vnni), cpu_has_avx512_vnni());
  if (cpu_has_avx512_vnni()) {
    EXPECT_EQ(kernels.front(), Int16Kernel::kAvx512Vnni);
  }
}

// Every shape a block meets: rows in tiles of 6 or 8 and their remainders, columns in panels of
// 16, pairs of panels and their remainders, rows picked out of order; the result exact (int64
// reference) on every kernel this CPU runs, and on the default one.
TEST(Int16Products, ExactForEveryShape) {
  for (const std::int64_t dim : {2, 16, 30, 296, 512}) {
    const std::vector<std::int16_t> points =
        random_values(50, dim, static_cast<std::uint32_t>(dim));
    for (const std::int64_t columns : {1, 15, 16, 17, 32, 40, 48}) {
      std::vector<std::int64_t> picked;
      for (std::int64_t j = 0; j < columns; ++j) picked.push_back((j * 7 + 3) % 50);
      const Int16Panels panels = pack_int16_panels(points.data(), picked.data(), columns, dim);
      for (const std::int64_t rows : {1, 5, 6, 7, 8, 9, 13, 50}) {
        std::vector<std::int32_t> which;
        for (std::int64_t r = 0; r < rows; ++r)
          which.push_back(static_cast<std::int32_t>((r * 11 + 5) % 50));
        std::vector<std::int32_t> fastest(rows * columns, -1);
        int16_products(points.data(), which.data(), rows, panels, fastest.data());
        for (const Int16Kernel kernel : int16_kernels()) {
          std::vector<std::int32_t> out(rows * columns, -1);
          int16_products(kernel, points.data(), which.data(), rows, panels, out.data());
          for (std::int64_t r = 0; r < rows; ++r) {
            for (std::int64_t j = 0; j < columns; ++j) {
              const std::int64_t expected =
                  exact_dot(points.data() + which[r] * dim, points.data() + picked[j] * dim, dim);
              ASSERT_EQ(out[r * columns + j], expected)
                  << int16_kernel_name(kernel) << " " << dim << " " << rows << " " << columns;
            }
          }
          EXPECT_EQ(out, fastest) << int16_kernel_name(kernel);
        }
      }
    }
  }
}

// A block writes its rows' products and nothing around them (the masked stores of a partial
// panel).
TEST(Int16Products, WritesNothingPastTheBlock) {
  const std::int64_t dim = 30;
  const std::vector<std::int16_t> points = random_values(20, dim, 3);
  for (const std::int64_t columns : {1, 17, 33}) {
    std::vector<std::int64_t> picked(static_cast<std::size_t>(columns));
    for (std::int64_t j = 0; j < columns; ++j) picked[static_cast<std::size_t>(j)] = j % 20;
    const Int16Panels panels = pack_int16_panels(points.data(), picked.data(), columns, dim);
    const std::vector<std::int32_t> rows{0, 1, 2};
    for (const Int16Kernel kernel : int16_kernels()) {
      std::vector<std::int32_t> out(static_cast<std::size_t>(3 * columns + 32), -7);
      int16_products(kernel, points.data(), rows.data(), 3, panels, out.data());
      for (std::size_t i = static_cast<std::size_t>(3 * columns); i < out.size(); ++i) {
        ASSERT_EQ(out[i], -7) << int16_kernel_name(kernel) << " " << columns;
      }
    }
  }
}

// The largest magnitudes, all of one sign: the sums reach 2^31 - 1's neighbourhood exactly.
TEST(Int16Products, ExactAtTheLimit) {
  for (const std::int64_t dim : {2, 296}) {
    const auto limit =
        static_cast<std::int16_t>(std::min(32767.0, std::floor(std::sqrt(2147483647.0 / dim))));
    std::vector<std::int16_t> points(2 * dim, limit);
    for (std::int64_t k = 0; k < dim; ++k) points[dim + k] = static_cast<std::int16_t>(-limit);
    const std::vector<std::int64_t> columns{0, 1};
    const Int16Panels panels = pack_int16_panels(points.data(), columns.data(), 2, dim);
    const std::vector<std::int32_t> rows{0, 1};
    std::vector<std::int32_t> out(4);
    int16_products(points.data(), rows.data(), 2, panels, out.data());
    const std::int64_t square = dim * static_cast<std::int64_t>(limit) * limit;
    EXPECT_LE(square, 2147483647);
    EXPECT_EQ(out[0], square);
    EXPECT_EQ(out[1], -square);
    EXPECT_EQ(out[3], square);
    for (const Int16Kernel kernel : int16_kernels()) {
      std::vector<std::int32_t> each(4);
      int16_products(kernel, points.data(), rows.data(), 2, panels, each.data());
      EXPECT_EQ(each, out) << int16_kernel_name(kernel);
      EXPECT_EQ(int16_dot(kernel)(points.data(), points.data() + dim, dim), -square);
    }
  }
}

TEST(Int16Dot, EveryImplementationIsExact) {
  for (const std::int64_t dim : {1, 7, 16, 31, 32, 33, 265, 1000}) {
    const std::vector<std::int16_t> a = random_values(2, dim, static_cast<std::uint32_t>(dim));
    const std::int64_t expected = exact_dot(a.data(), a.data() + dim, dim);
    EXPECT_EQ(int16_dot()(a.data(), a.data() + dim, dim), expected) << dim;
    for (const Int16Kernel kernel : int16_kernels()) {
      EXPECT_EQ(int16_dot(kernel)(a.data(), a.data() + dim, dim), expected)
          << int16_kernel_name(kernel) << " " << dim;
    }
  }
}

TEST(Int16GridStep, APowerOfTwoFromTheBindingLimit) {
  // Coordinates bind: 32767 units at most.
  EXPECT_EQ(int16_grid_step(32767.0, 100.0, 4), 1.0);
  EXPECT_EQ(int16_grid_step(32768.0, 100.0, 4), 2.0);
  // Lengths bind: below sqrt(2^31) units with room for the rounding.
  EXPECT_EQ(int16_grid_step(1.0, 40000.0, 296), 1.0);
  EXPECT_EQ(int16_grid_step(1.0, 46339.0, 296), 2.0);
  EXPECT_EQ(int16_grid_step(0.0, 0.0, 8), 1.0);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(int16_grid_step(nan, 1.0, 8), Error);
  EXPECT_THROW(int16_grid_step(1.0, inf, 8), Error);
}

// The bounds a grid is chosen from, read in place; the rows on the grid: each value's nearest
// integer number of steps (halves to even), zeros to the padded width.
TEST(Int16Grid, BoundsAndRoundingInPlace) {
  const std::vector<float> values = {3.0f, -4.0f, 0.5f, 1.5f, -2.5f, 0.25f};  // 2 rows of 3
  const Int16GridBounds bounds = int16_grid_bounds(values.data(), 2, 3);
  EXPECT_TRUE(bounds.finite);
  EXPECT_EQ(bounds.largest, 4.0);
  EXPECT_NEAR(bounds.longest, std::sqrt(9.0 + 16.0 + 0.25), 1e-12);
  std::vector<std::int16_t> grid(8, 7);
  to_int16_grid(values.data(), 2, 3, 0.5, grid.data(), 4);
  EXPECT_EQ(grid, (std::vector<std::int16_t>{6, -8, 1, 0, 3, -5, 0, 0}));
  to_int16_grid(values.data(), 2, 3, 1.0, grid.data(), 4);  // 0.5 -> 0, 1.5 -> 2, -2.5 -> -2
  EXPECT_EQ(grid, (std::vector<std::int16_t>{3, -4, 0, 0, 2, -2, 0, 0}));
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> broken = values;
    broken[4] = bad;
    EXPECT_FALSE(int16_grid_bounds(broken.data(), 2, 3).finite);
  }
}

}  // namespace
}  // namespace pv
