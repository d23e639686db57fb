#include "patchcore/scorer.h"

#include <algorithm>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

namespace pv::patchcore {

Scorer::Scorer(const at::Tensor& bank, const ScorerOptions& options)
    : options_(options),
      bank_(bank.scalar_type() == at::kBFloat16 ? bank.contiguous()
                                                : bank.to(at::kFloat).contiguous()),
      search_(bank_, options.search) {
  if (options.num_neighbors < 1) {
    throw Error("--num-neighbors must be at least 1, got " + std::to_string(options.num_neighbors));
  }
}

Scores Scorer::score(const at::Tensor& embeddings) const {
  const std::int64_t batch = embeddings.size(0);
  const std::int64_t height = embeddings.size(1);
  const std::int64_t width = embeddings.size(2);
  const at::Tensor patches = embeddings.reshape({batch * height * width, -1});
  const search::Neighbors nearest = search_.search(patches, 1);
  const at::Tensor distances = nearest.distances.view({batch, height * width});
  const at::Tensor locations = nearest.indices.view({batch, height * width});

  const at::Tensor maps = distances.view({batch, height, width});
  const at::Tensor worst = distances.argmax(1, /*keepdim=*/true);  // each image's s* patch
  const at::Tensor s_star = distances.gather(1, worst).squeeze(1);
  const auto k = std::min<std::int64_t>(options_.num_neighbors, bank_.size(0));
  if (k <= 1) return {maps, s_star};
  // N: the k nearest bank vectors of each image's m*.
  const at::Tensor m_stars = locations.gather(1, worst).squeeze(1);
  const at::Tensor supports =
      search_.search(bank_.index_select(0, m_stars).to(at::kFloat), static_cast<int>(k)).indices;
  at::Tensor image_scores = at::empty({batch}, at::kFloat);
  for (std::int64_t b = 0; b < batch; ++b) {
    const at::Tensor support = bank_.index_select(0, supports[b]).to(at::kFloat);
    const at::Tensor patch = patches[b * height * width + worst[b][0].item<std::int64_t>()];
    const at::Tensor to_support = (support - patch).pow(2).sum(1).sqrt();
    const double weight = 1.0 - at::softmax(to_support.to(at::kDouble), 0)[0].item<double>();
    image_scores[b] = static_cast<float>(weight * s_star[b].item<float>());
  }
  return {maps, image_scores};
}

}  // namespace pv::patchcore
