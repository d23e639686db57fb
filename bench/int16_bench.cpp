// The int16 products kernels (util/int16_products.h) side by side on one block: 2,048 rows times
// 1,024 columns of 296 values, the shape of a coreset's dense round on projected patches. Reports
// multiply-adds per second (counter "madd/s") for each kernel this CPU runs, on one thread.
//
//   build/bench/int16_bench
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "util/int16_products.h"

namespace {

constexpr std::int64_t kRows = 2048;
constexpr std::int64_t kColumns = 1024;
constexpr std::int64_t kDim = 296;

void products(benchmark::State& state, pv::Int16Kernel kernel) {
  std::mt19937 random(1);
  std::uniform_int_distribution<int> value(-2000, 2000);  // within the grid's length limit
  std::vector<std::int16_t> points(static_cast<std::size_t>(kRows * kDim));
  for (auto& v : points) v = static_cast<std::int16_t>(value(random));
  std::vector<std::int64_t> columns(kColumns);
  for (std::int64_t j = 0; j < kColumns; ++j) columns[static_cast<std::size_t>(j)] = j;
  const pv::Int16Panels panels =
      pv::pack_int16_panels(points.data(), columns.data(), kColumns, kDim);
  std::vector<std::int32_t> rows(kRows);
  for (std::int64_t r = 0; r < kRows; ++r)
    rows[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(r);
  std::vector<std::int32_t> out(static_cast<std::size_t>(kRows * kColumns));
  for (auto _ : state) {
    pv::int16_products(kernel, points.data(), rows.data(), kRows, panels, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["madd/s"] = benchmark::Counter(
      static_cast<double>(kRows * kColumns * kDim) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

const bool registered = [] {
  for (const pv::Int16Kernel kernel : pv::int16_kernels()) {
    if (kernel == pv::Int16Kernel::kScalar) continue;  // minutes per block; the tests cover it
    benchmark::RegisterBenchmark(
        (std::string("BM_Int16Products/") + pv::int16_kernel_name(kernel)).c_str(), products,
        kernel)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(2.0);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
