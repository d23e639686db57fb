// The one interface of a search over a fixed memory bank (FAISS's pattern: one interface, several
// implementations). ExactSearch (exact_search.h) answers exactly; ShortlistSearch
// (shortlist_search.h) approximately, and exactly when asked through search_exact().
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace pv::search {

struct Neighbors {
  at::Tensor distances;  // queries x k, float32, Euclidean, ascending per row
  at::Tensor indices;    // queries x k, int64, rows of the bank
};

// Implementations are immutable after construction: their methods may run on many threads at once.
class BankSearch {
 public:
  virtual ~BankSearch() = default;

  // The k nearest bank vectors of each row of `queries` (Q x D float32); distances ascending per
  // row, among equal ones the lower index first. An approximate search's answers are real bank
  // vectors at their exact distances, never nearer than the true k-th.
  virtual Neighbors search(const at::Tensor& queries, int k) const = 0;
  // The same, always exact (1 <= k <= size()): the whole bank's answer. Meant for a few rows.
  virtual Neighbors search_exact(const at::Tensor& queries, int k) const = 0;
  // Whether search() may miss a true neighbour.
  virtual bool approximate() const = 0;

  virtual std::int64_t size() const = 0;
  virtual std::int64_t dim() const = 0;
};

}  // namespace pv::search
