#include "patchcore/scorer.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <patchvec/error.h>

namespace pv::patchcore {

Scorer::Scorer(const at::Tensor& bank, const ScorerOptions& options)
    : options_(options),
      bank_(bank.scalar_type() == at::kBFloat16 ? bank.contiguous()
                                                : bank.to(at::kFloat).contiguous()),
      method_(resolve_search_method(options.method, bank_.size(0))) {
  if (options.num_neighbors < 1) {
    throw Error("--num-neighbors must be at least 1, got " + std::to_string(options.num_neighbors));
  }
  if (method_ == SearchMethod::kShortlist) {
    search_ = std::make_shared<const search::ShortlistSearch>(bank_, options.shortlist);
  } else {
    search_ = std::make_shared<const search::ExactSearch>(bank_, options.search);
  }
}

std::int64_t Scorer::remeasure_maxima(const at::Tensor& patches, at::Tensor& distances,
                                      at::Tensor& locations) const {
  const std::int64_t batch = distances.size(0);
  const std::int64_t per_image = distances.size(1);
  // Each image's patches by descending shortlist distance (stable: the lower index first).
  const at::Tensor order =
      std::get<1>(distances.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true)).contiguous();
  const std::int64_t* ranked = order.data_ptr<std::int64_t>();
  // A patch's entry holds its shortlist distance until it is measured (each at most once).
  float* distance = distances.data_ptr<float>();
  std::int64_t* location = locations.data_ptr<std::int64_t>();
  std::vector<std::int64_t> next(static_cast<std::size_t>(batch), 0);
  std::vector<float> largest(static_cast<std::size_t>(batch),
                             -std::numeric_limits<float>::infinity());
  std::int64_t remeasured = 0;
  // A round measures each unfinished image's next patch; most images need one or two.
  for (std::int64_t round = 0; round < per_image; ++round) {
    std::vector<std::int64_t> rows;
    for (std::int64_t b = 0; b < batch; ++b) {
      const auto i = static_cast<std::size_t>(b);
      if (next[i] == per_image) continue;
      const std::int64_t patch = ranked[b * per_image + next[i]];
      // A true distance is at most its shortlist one: below the largest exact one, it cannot
      // be the maximum nor tie with it (nor can any patch after it). NaN is measured.
      if (distance[b * per_image + patch] < largest[i]) {
        next[i] = per_image;
        continue;
      }
      rows.push_back(b * per_image + patch);
      ++next[i];
    }
    if (rows.empty()) break;
    const at::Tensor index = at::tensor(rows, at::kLong);
    const search::Neighbors exact = search_->search_exact(patches.index_select(0, index), 1);
    const float* exact_distances = exact.distances.data_ptr<float>();
    const std::int64_t* exact_indices = exact.indices.data_ptr<std::int64_t>();
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const std::int64_t row = rows[r];
      distance[row] = exact_distances[r];
      location[row] = exact_indices[r];
      float& best = largest[static_cast<std::size_t>(row / per_image)];
      best = std::max(best, distance[row]);
    }
    remeasured += static_cast<std::int64_t>(rows.size());
  }
  return remeasured;
}

Scores Scorer::score(const at::Tensor& embeddings) const {
  const std::int64_t batch = embeddings.size(0);
  const std::int64_t height = embeddings.size(1);
  const std::int64_t width = embeddings.size(2);
  const at::Tensor patches = embeddings.reshape({batch * height * width, -1});
  const search::Neighbors nearest = search_->search(patches, 1);
  at::Tensor distances = nearest.distances.view({batch, height * width});
  at::Tensor locations = nearest.indices.view({batch, height * width});
  std::int64_t remeasured = 0;
  if (search_->approximate()) {
    distances = distances.contiguous();
    locations = locations.contiguous();
    remeasured = remeasure_maxima(patches, distances, locations);
  }

  const at::Tensor maps = distances.view({batch, height, width});
  const at::Tensor worst = distances.argmax(1, /*keepdim=*/true);  // each image's s* patch
  const at::Tensor s_star = distances.gather(1, worst).squeeze(1);
  const auto k = std::min<std::int64_t>(options_.num_neighbors, bank_.size(0));
  if (k <= 1) return {maps, s_star, remeasured};
  // N: the k nearest bank vectors of each image's m*.
  const at::Tensor m_stars = locations.gather(1, worst).squeeze(1);
  const at::Tensor supports =
      search_->search_exact(bank_.index_select(0, m_stars).to(at::kFloat), static_cast<int>(k))
          .indices;
  at::Tensor image_scores = at::empty({batch}, at::kFloat);
  for (std::int64_t b = 0; b < batch; ++b) {
    const at::Tensor support = bank_.index_select(0, supports[b]).to(at::kFloat);
    const at::Tensor patch = patches[b * height * width + worst[b][0].item<std::int64_t>()];
    const at::Tensor to_support = (support - patch).pow(2).sum(1).sqrt();
    const double weight = 1.0 - at::softmax(to_support.to(at::kDouble), 0)[0].item<double>();
    image_scores[b] = static_cast<float>(weight * s_star[b].item<float>());
  }
  return {maps, image_scores, remeasured};
}

}  // namespace pv::patchcore
