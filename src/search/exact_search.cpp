#include "search/exact_search.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <patchvec/error.h>
#include <patchvec/system.h>

#include "search/scan.h"

namespace pv::search {

using namespace detail;  // NOLINT(google-build-using-namespace): this module's own internals

namespace {

// Queries multiplied by the bank's grid together, then scanned (their integers stay in cache while
// its panels go by, 96 x 1,536 int16 being 288 KiB; their products, 96 x the bank, are scanned
// while still warm, and the buffer is reused: no block-sized product matrix to allocate).
constexpr std::int64_t kGridRows = 96;
// Slack on the int16 error bound's own rounding (it is computed in double and float).
constexpr double kBoundMargin = 1.01;

// A block of queries on its int16 grid.
struct QueryGrid {
  at::Tensor integers;  // queries x the bank grid's width, int16
  double step = 0;      // the queries' grid step
  std::int64_t dim = 0;

  // The product's terms of query `c`'s context. x~ = step X is within E_x = step / 2 sqrt(dim) of
  // x (half a step in each coordinate), y~ within E_y of y, and the computed product is
  // x~.y~ rounded once (to float), so |x.y - computed| <= |x - x~||y| + |x~||y - y~| + u |x~||y~|
  // <= (E_x + u (|x| + E_x)) |y| + (|x| + E_x) E_y (1 + u).
  void bound(RowContext& c, double bank_step) const {
    const double root = std::sqrt(static_cast<double>(dim));
    const double e_x = step / 2 * root;
    const double e_y = bank_step / 2 * root;
    const double x = static_cast<double>(c.query_norm) * (1 + 1e-3);  // its float rounding
    c.grid_unit = static_cast<float>(step * bank_step);
    c.dot_error = 0;
    c.norm_error = kBoundMargin * (e_x + kFloatUnitRoundoff * (x + e_x));
    c.constant_error = kBoundMargin * (x + e_x) * e_y * (1 + kFloatUnitRoundoff);
  }
};

// `block` on its grid for products with the bank's grid (`width` int16 a row, of step
// `bank_step`); none when the block holds non-finite values or a product's unit would not be a
// normal float32 (the float32 path then).
std::optional<QueryGrid> on_query_grid(const at::Tensor& block, std::int64_t width,
                                       double bank_step) {
  const at::Tensor rows = block.contiguous();
  const std::int64_t n = rows.size(0);
  const std::int64_t dim = rows.size(1);
  const Int16GridBounds bounds = int16_grid_bounds(rows.data_ptr<float>(), n, dim);
  if (!bounds.finite) return std::nullopt;
  QueryGrid grid{.step = int16_grid_step(bounds.largest, bounds.longest, width), .dim = dim};
  const double unit = grid.step * bank_step;
  if (!(unit >= FLT_MIN) || !(unit <= FLT_MAX / 4294967296.0)) return std::nullopt;
  grid.integers = at::empty({n, width}, at::kShort);
  to_int16_grid(rows.data_ptr<float>(), n, dim, grid.step, grid.integers.data_ptr<std::int16_t>(),
                width);
  return grid;
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
  const std::int64_t min_size =
      options_.partition_min_size >= 0
          ? options_.partition_min_size
          : (cpu_has_native_bf16() ? kPartitionMinSizeBf16 : kPartitionMinSizeFp32);
  const bool partitioned = min_size > 0 && bank.size(0) >= min_size &&
                           bank.size(0) >= 2 * std::max<std::int64_t>(options_.cluster_size, 1);
  precision_ = options.precision;
  // The bounds of the bank's grid, where int16 may be used (read in place: no copy of the bank).
  Int16GridBounds bounds;
  const bool int16_wanted =
      precision_ == Precision::kInt16 ||
      (precision_ == Precision::kAuto && !cpu_has_native_bf16() && cpu_has_avx2());
  if (int16_wanted) {
    bounds = int16_grid_bounds(centred.data_ptr<float>(), centred.size(0), centred.size(1));
  }
  const bool finite = bounds.finite;
  if (precision_ == Precision::kAuto) {
    // A cluster's products are small: bfloat16's looser bounds would cost more than it saves.
    // Without it, the whole bank's products (a partitioned bank's blocks its bounds do not prune)
    // in int16 where AVX2 runs them at twice float32's rate.
    if (cpu_has_native_bf16()) {
      precision_ = partitioned ? Precision::kFloat32 : Precision::kBFloat16;
    } else {
      precision_ = cpu_has_avx2() && finite ? Precision::kInt16 : Precision::kFloat32;
    }
  }
  if (precision_ == Precision::kInt16 && !finite) {
    throw Error("nearest-neighbour search: int16 products need a bank of finite values");
  }
  // A bfloat16 bank behind a bfloat16 filter is measured in its own values (no float32 copy);
  // behind a float32 filter, in that filter's (its values widened, centred: the same memory).
  if (half && precision_ == Precision::kBFloat16) raw_ = vectors.contiguous();
  if (partitioned) partition(centred);  // reorders `centred` and `raw_` cluster by cluster
  squared_norms_ = centred.pow(2).sum(1).contiguous();
  norms_ = squared_norms_.sqrt().contiguous();
  filter_ = precision_ == Precision::kBFloat16 ? centred.to(at::kBFloat16).contiguous() : centred;
  if (precision_ == Precision::kInt16) {
    // The stored rows (in cluster order when partitioned), zero-padded to an even width.
    const std::int64_t width = dim() + dim() % 2;
    grid_step_ = int16_grid_step(bounds.largest, bounds.longest, width);
    std::vector<std::int16_t> grid(static_cast<std::size_t>(size() * width));
    to_int16_grid(centred.data_ptr<float>(), size(), dim(), grid_step_, grid.data(), width);
    std::vector<std::int64_t> all(static_cast<std::size_t>(size()));
    for (std::size_t j = 0; j < all.size(); ++j) all[j] = static_cast<std::int64_t>(j);
    grid_ = pack_int16_panels(grid.data(), all.data(), size(), width);
  }
  if (!raw_.defined()) centred_ = std::move(centred);
}

Neighbors ExactSearch::search(const at::Tensor& queries, int k) const {
  check_request(queries, k, dim(), size());
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

void ExactSearch::search_whole(const Rows& rows, int k, Neighbors& out, std::int64_t first,
                               std::int64_t count) const {
  const std::int64_t end = count < 0 ? rows.centred.size(0) : first + count;
  const std::int64_t element_bytes = filter_.element_size();
  const std::int64_t block = std::clamp<std::int64_t>(
      options_.max_block_bytes / std::max<std::int64_t>(size() * element_bytes, 1), 1,
      std::max<std::int64_t>(end - first, 1));
  const double dot_error = dot_error_coefficient(precision_, dim());
  // A partitioned bank's rows are in cluster order: its answers name the rows as given.
  const std::int64_t* order = clusters() > 0 ? order_.data_ptr<std::int64_t>() : nullptr;
  for (std::int64_t start = first; start < end; start += block) {
    const std::int64_t n = std::min(block, end - start);
    const at::Tensor query_block = rows.centred.narrow(0, start, n);
    // The block on its own grid (int16: queries with non-finite values go through float32).
    std::optional<QueryGrid> grid;
    if (precision_ == Precision::kInt16) grid = on_query_grid(query_block, grid_.dim, grid_step_);
    if (grid) {
      at::parallel_for(0, n, kGridRows, [&](std::int64_t begin, std::int64_t end) {
        std::vector<std::int32_t> dots(static_cast<std::size_t>(kGridRows * size()));
        std::vector<std::int32_t> ids(static_cast<std::size_t>(kGridRows));
        std::vector<float> scratch;
        for (std::int64_t group = begin; group < end; group += kGridRows) {
          const std::int64_t rows_in_group = std::min(kGridRows, end - group);
          for (std::int64_t i = 0; i < rows_in_group; ++i) {
            ids[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(group + i);
          }
          int16_products(grid->integers.data_ptr<std::int16_t>(), ids.data(), rows_in_group, grid_,
                         dots.data());
          for (std::int64_t i = 0; i < rows_in_group; ++i) {
            const std::int64_t q = start + group + i;
            RowContext context = rows.context(*this, q, 0, size(), 0);
            grid->bound(context, grid_step_);
            TopK exact(k);
            scan(context, dots.data() + i * size(), order, scratch, exact);
            write_answer(exact, out.distances.data_ptr<float>() + q * k,
                         out.indices.data_ptr<std::int64_t>() + q * k);
          }
        }
      });
      continue;
    }
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
          scan(context, dots.data_ptr<c10::BFloat16>() + r * size(), order, scratch, exact);
        } else {
          scan(context, dots.data_ptr<float>() + r * size(), order, scratch, exact);
        }
        write_answer(exact, out.distances.data_ptr<float>() + q * k,
                     out.indices.data_ptr<std::int64_t>() + q * k);
      }
    });
  }
}

}  // namespace pv::search
