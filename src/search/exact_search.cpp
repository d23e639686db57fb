#include "search/exact_search.h"

#include <algorithm>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <patchvec/error.h>
#include <patchvec/system.h>

#include "search/scan.h"

namespace pv::search {

using namespace detail;  // NOLINT(google-build-using-namespace): this module's own internals

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
  if (precision_ == Precision::kAuto) {
    // A cluster's products are small: bfloat16's looser bounds would cost more than it saves.
    precision_ = !partitioned && cpu_has_native_bf16() ? Precision::kBFloat16 : Precision::kFloat32;
  }
  // A bfloat16 bank behind a bfloat16 filter is measured in its own values (no float32 copy);
  // behind a float32 filter, in that filter's (its values widened, centred: the same memory).
  if (half && precision_ == Precision::kBFloat16) raw_ = vectors.contiguous();
  if (partitioned) partition(centred);  // reorders `centred` and `raw_` cluster by cluster
  squared_norms_ = centred.pow(2).sum(1).contiguous();
  norms_ = squared_norms_.sqrt().contiguous();
  filter_ = precision_ == Precision::kBFloat16 ? centred.to(at::kBFloat16).contiguous() : centred;
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
