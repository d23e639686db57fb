// How PatchCore's memory bank is chosen from the training patches: greedy k-center (Gonzalez 1985;
// Sener & Savarese 2018) keeps the patches that cover all others with the smallest radius.
#pragma once

#include <string_view>

namespace pv {

// How the memory bank's patches are chosen (greedy k-center over the training patches).
enum class CoresetMethod {
  kExact,  // the textbook greedy selection, PatchCore's and anomalib's: the reference
  // Default: rounds of centres chosen together, each at least 0.95 times the farthest distance
  // from every centre; a covering radius within 2 / 0.95 of the optimum (exact: within 2), within
  // a few percent of the exact one on real embeddings, in a fraction of the time; where the
  // triangle inequality cannot prune (fine-grained embeddings) a round is matrix products, so its
  // time is bounded by N x k x d multiply-adds at the BLAS's speed whatever the data.
  kFast,
};
const char* coreset_method_name(CoresetMethod method);  // "exact", "fast"
// The method `name` spells; throws pv::Error naming `setting` for anything else.
CoresetMethod parse_coreset_method(std::string_view name, std::string_view setting);

}  // namespace pv
