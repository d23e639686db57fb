#include "patchcore/scorer.h"

#include <algorithm>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

namespace pv::patchcore {

at::Tensor Scorer::neighbors_of(const search::ExactSearch& bank, const at::Tensor& vectors, int k,
                                const std::function<void(std::int64_t)>& on_progress) {
  const auto count = vectors.size(0);
  const auto neighbors = std::min<std::int64_t>(k, bank.size());
  at::Tensor result = at::empty({count, neighbors}, at::kLong);
  constexpr std::int64_t kChunk = 2048;  // for the progress bar; the search blocks on its own
  for (std::int64_t start = 0; start < count; start += kChunk) {
    const auto rows = std::min(kChunk, count - start);
    result.narrow(0, start, rows)
        .copy_(bank.search(vectors.narrow(0, start, rows), static_cast<int>(neighbors)).indices);
    if (on_progress) on_progress(start + rows);
  }
  return result;
}

Scorer::Scorer(const at::Tensor& bank, at::Tensor bank_neighbors, const ScorerOptions& options,
               const std::function<void(std::int64_t)>& on_progress)
    : options_(options), bank_(bank.to(at::kFloat).contiguous()), search_(bank_, options.search) {
  if (options.num_neighbors < 1) {
    throw Error("--num-neighbors must be at least 1, got " + std::to_string(options.num_neighbors));
  }
  const auto needed = std::min<std::int64_t>(options.num_neighbors, bank_.size(0));
  if (!bank_neighbors.defined()) {
    bank_neighbors = needed > 1
                         ? neighbors_of(search_, bank_, static_cast<int>(needed), on_progress)
                         : at::empty({bank_.size(0), 0}, at::kLong);
  }
  if (bank_neighbors.size(0) != bank_.size(0) ||
      bank_neighbors.size(1) < (needed > 1 ? needed : 0)) {
    throw Error("memory bank neighbours do not match the bank (" +
                std::to_string(bank_neighbors.size(0)) + " x " +
                std::to_string(bank_neighbors.size(1)) + " for " + std::to_string(bank_.size(0)) +
                " vectors, " + std::to_string(needed) + " neighbours needed)");
  }
  neighbors_ = bank_neighbors.to(at::kLong).contiguous();
}

Scores Scorer::score(const at::Tensor& embeddings) const {
  const std::int64_t batch = embeddings.size(0);
  const std::int64_t height = embeddings.size(1);
  const std::int64_t width = embeddings.size(2);
  const at::Tensor patches = embeddings.reshape({batch * height * width, -1});
  const search::Neighbors nearest = search_.search(patches, 1);
  const at::Tensor distances = nearest.distances.view({batch, height * width});
  const at::Tensor locations = nearest.indices.view({batch, height * width});

  at::Tensor image_scores = at::empty({batch}, at::kFloat);
  const auto k = std::min<std::int64_t>(options_.num_neighbors, bank_.size(0));
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t worst = distances[b].argmax().item<std::int64_t>();
    const float s_star = distances[b][worst].item<float>();
    if (k <= 1) {
      image_scores[b] = s_star;
      continue;
    }
    const std::int64_t m_star = locations[b][worst].item<std::int64_t>();
    const at::Tensor support = bank_.index_select(0, neighbors_[m_star].narrow(0, 0, k));
    const at::Tensor patch = patches[b * height * width + worst];
    const at::Tensor to_support = (support - patch).pow(2).sum(1).sqrt();
    const double weight = 1.0 - at::softmax(to_support.to(at::kDouble), 0)[0].item<double>();
    image_scores[b] = static_cast<float>(weight * s_star);
  }
  return {distances.view({batch, height, width}), image_scores};
}

}  // namespace pv::patchcore
